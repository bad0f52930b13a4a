# Generated from async_admin.py by scripts/generate_sync.py: do not edit. Edit async_admin.py, then run
# `python scripts/generate_sync.py` in sdks/python.
"""The synchronous operator client: :class:`NexusAdminClient` (providers, connections, agents, audit)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from . import _admin_calls, _calls
from ._config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    resolve_config,
)
from ._sync_transport import SyncTransport
from ._transport import Clock, SyncSleep
from .models import (
    Agent,
    AgentWithSecret,
    AuditEvent,
    AuditPage,
    ConnectionRequest,
    Credential,
    Provider,
    ProviderSummary,
    RevokeResult,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["NexusAdminClient"]


class _Providers:
    def __init__(self, t: SyncTransport) -> None:
        self._t = t

    def create(self, profile: Mapping[str, Any]) -> str:
        """Registers a provider; returns its id."""
        return self._t.send(_admin_calls.create_provider(profile))

    def list(self) -> builtins.list[ProviderSummary]:
        return self._t.send(_admin_calls.list_providers())

    def get(self, provider_id: str) -> Provider:
        return self._t.send(_admin_calls.get_provider(provider_id))

    def id_by_name(self, name: str) -> str:
        return self._t.send(_admin_calls.provider_id_by_name(name))

    def replace(self, provider_id: str, profile: Mapping[str, Any]) -> Provider:
        return self._t.send(_admin_calls.replace_provider(provider_id, profile))

    def update(self, provider_id: str, changes: Mapping[str, Any]) -> Provider:
        """PATCH: changes some fields (``None`` clears one)."""
        return self._t.send(_admin_calls.patch_provider(provider_id, changes))

    def delete(self, provider_id: str) -> None:
        self._t.send(_admin_calls.delete_provider(provider_id))

    def metadata(self) -> dict[str, dict[str, Any]]:
        return self._t.send(_calls.provider_metadata("/providers/metadata"))


class _Connections:
    def __init__(self, t: SyncTransport) -> None:
        self._t = t

    def start_consent(
        self, workspace_id: str, provider_id: str, *, return_url: str, scopes: Sequence[str] | None = None
    ) -> ConnectionRequest:
        """Operator form of request_connection (``POST /auth/consent-spec``)."""
        return self._t.send(_admin_calls.consent_spec(workspace_id, provider_id, scopes, return_url))

    def get_token(self, connection_id: str) -> Credential:
        return self._t.send(_calls.get_token(connection_id, "/connections/", "/token"))

    def refresh(self, connection_id: str) -> Credential:
        return self._t.send(_calls.refresh_connection(connection_id, "/connections/", "/refresh"))

    def resolve(self, workspace_id: str, provider_name: str) -> Credential:
        return self._t.send(_calls.resolve_token(workspace_id, provider_name, "/connections/resolve"))

    def revoke(self, connection_id: str, *, reason: str | None = None) -> RevokeResult:
        return self._t.send(_calls.revoke_connection(connection_id, reason, "/connections/"))


class _Agents:
    def __init__(self, t: SyncTransport) -> None:
        self._t = t

    def create(
        self,
        agent_id: str,
        *,
        allowed_scopes: Sequence[str] = (),
        allowed_providers: Sequence[str] = (),
        allowed_workspaces: Sequence[str] = (),
        allowed_secrets: Sequence[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        generate_secret: bool = True,
    ) -> AgentWithSecret:
        """Registers an agent; its client secret (when generated) is in the answer, once."""
        return self._t.send(
            _admin_calls.create_agent(
                {
                    "agent_id": agent_id,
                    "allowed_scopes": list(allowed_scopes),
                    "allowed_providers": list(allowed_providers),
                    "allowed_workspaces": list(allowed_workspaces),
                    "allowed_secrets": None if allowed_secrets is None else list(allowed_secrets),
                    "description": description,
                    "active": active,
                    "jwks": jwks,
                    "jwks_uri": jwks_uri,
                    "generate_secret": generate_secret,
                }
            )
        )

    def list(self) -> builtins.list[Agent]:
        return self._t.send(_admin_calls.list_agents())

    def get(self, agent_id: str) -> Agent:
        return self._t.send(_admin_calls.get_agent(agent_id))

    def update(self, agent_id: str, changes: Mapping[str, Any], *, if_match: str | None = None) -> Agent:
        """PATCH an agent; ``{"active": False}`` deactivates it at once."""
        return self._t.send(_admin_calls.update_agent(agent_id, changes, if_match))

    def delete(self, agent_id: str) -> None:
        self._t.send(_admin_calls.delete_agent(agent_id))

    def rotate_secret(self, agent_id: str, *, overlap_seconds: int | None = None) -> dict[str, Any]:
        """A new client secret (``client_secret`` in the answer, once); old ones work for the overlap."""
        return self._t.send(_admin_calls.rotate_agent_secret(agent_id, overlap_seconds))

    def revoke_secret(self, agent_id: str, secret_id: str) -> None:
        self._t.send(_admin_calls.revoke_agent_secret(agent_id, secret_id))


class _Audit:
    def __init__(self, t: SyncTransport) -> None:
        self._t = t

    def list(
        self,
        *,
        event_type: str | None = None,
        actor: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AuditPage:
        """One page of audit events, newest first; pass ``next_cursor`` back as ``cursor``."""
        return self._t.send(_admin_calls.list_audit(event_type, actor, resource, since, until, limit, cursor))

    def iter(
        self,
        *,
        event_type: str | None = None,
        actor: str | None = None,
        resource: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> Iterator[AuditEvent]:
        """Every matching event, newest first, following the cursor."""
        cursor: str | None = None
        while True:
            page = self.list(
                event_type=event_type,
                actor=actor,
                resource=resource,
                since=since,
                until=until,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class NexusAdminClient:
    """Client of the operator API (admin API key only): ``providers``, ``connections``, ``agents``, ``audit``.

    Configuration: each argument, else ``NEXUS_URL`` / ``NEXUS_API_KEY``, else the default URL.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
        sleep: SyncSleep | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        cfg = resolve_config(
            base_url=base_url,
            api_key=api_key,
            client_id=None,
            client_secret=None,
            env=env,
            allow_client_credentials=False,
            who="NexusAdminClient",
        )
        policy = RetryPolicy(max_retries, backoff_base, backoff_max, max_retry_after)
        self._t = SyncTransport(cfg, policy, timeout, http_client, clock, sleep)
        self.providers = _Providers(self._t)
        self.connections = _Connections(self._t)
        self.agents = _Agents(self._t)
        self.audit = _Audit(self._t)

    @property
    def base_url(self) -> str:
        return self._t.cfg.base_url

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> NexusAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NexusAdminClient(base_url={self.base_url!r})"

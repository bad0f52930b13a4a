# The sync twin of this file, client.py, is generated from it: edit here, then run
# `python scripts/generate_sync.py` in sdks/python (the test run checks that client.py is up to date).
# On the sync side a line with a `# sync: CODE` comment reads CODE (see that script).
"""The asynchronous agent client: :class:`AsyncNexusClient`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from . import _calls
from ._async_transport import AsyncTransport
from ._config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    resolve_config,
)
from ._core import check_wait, finish_resolution
from ._transport import DEFAULT_TOKEN_SKEW, AsyncSleep, Clock
from .errors import (
    ConflictError,
    NotFoundError,
    WaitTimeoutError,
)
from .models import (
    AgentSession,
    AgentToken,
    ConfirmedConnection,
    ConnectionRequest,
    ConnectionStatus,
    ConnectSession,
    Credential,
    RevokeResult,
    UserSecret,
)
from .secrets import find_references

if TYPE_CHECKING:
    from .bridge import NexusAuth
    # sync: from .requests_auth import NexusRequestsAuth

__all__ = ["AsyncNexusClient"]


class AsyncNexusClient:
    """Client of the agent-facing API.

    Configuration: each argument, else the environment (``NEXUS_URL``, ``NEXUS_API_KEY``,
    ``NEXUS_CLIENT_ID``/``NEXUS_CLIENT_SECRET``), else the default (``http://127.0.0.1:8080``).
    Authenticate with an admin API key or, as an agent, with client credentials: the client logs
    in with ``client_credentials`` on first use, renews the token shortly before it expires and logs
    in again once if the broker answers 401.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        token_skew: float = DEFAULT_TOKEN_SKEW,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        sleep: AsyncSleep | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        cfg = resolve_config(
            base_url=base_url,
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            env=env,
            allow_client_credentials=True,
            who="AsyncNexusClient",
        )
        policy = RetryPolicy(max_retries, backoff_base, backoff_max, max_retry_after)
        self._t = AsyncTransport(cfg, policy, timeout, http_client, clock, sleep, scope, token_skew)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._t.cfg.base_url

    @property
    def uses_client_credentials(self) -> bool:
        """True when the client authenticates as an agent (client credentials), False for an API key."""
        return self._t.cfg.uses_client_credentials

    async def aclose(self) -> None:
        """Closes the underlying httpx client (unless it was passed in)."""
        await self._t.aclose()

    async def __aenter__(self) -> AsyncNexusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        mode = "client_credentials" if self.uses_client_credentials else "api_key"
        return f"AsyncNexusClient(base_url={self.base_url!r}, auth={mode!r})"

    # -- agent login -----------------------------------------------------------------------------

    async def login(self) -> AgentToken:
        """Logs in with client credentials now (normally automatic) and returns the cached token."""
        if not self.uses_client_credentials:
            raise TypeError("login() needs agent client credentials (client_id and client_secret)")
        return await self._t.agent_token()

    # -- connections -----------------------------------------------------------------------------

    async def request_connection(
        self,
        user_id: str,
        *,
        provider_name: str | None = None,
        provider_id: str | None = None,
        scopes: Sequence[str] | None = None,
        return_url: str,
        connection_config: Mapping[str, str] | None = None,
        verify: bool | None = None,
    ) -> ConnectionRequest:
        """Starts connecting a user's account; send the user to ``auth_url`` of the answer.

        ``connection_config``: values of the provider's per-connection parameters (a Zendesk ``subdomain``,
        a Microsoft ``tenant``); the broker refuses names it does not declare, missing values and values
        that do not match their patterns (400 ``invalid_connection_config``).
        ``verify``: have your application confirm the user before the connection activates (the browser
        goes to the broker's verifier page with a ``flow_id``; your server calls ``confirm_connection``);
        ``None`` is the operator's default, and a broker without a verifier answers 400
        ``verifier_not_configured``.
        """
        return await self._t.send(
            _calls.request_connection(
                user_id, provider_name, provider_id, scopes, return_url, connection_config, verify
            )
        )

    async def create_connect_session(
        self,
        user_id: str,
        *,
        providers: Sequence[str] | None = None,
        return_url: str,
        connection_config: Mapping[str, str] | None = None,
        verify: bool | None = None,
    ) -> ConnectSession:
        """A hosted connect page for one user: a short-lived, single-use ``url`` listing ``providers``.

        ``providers``: ids, names or aliases to offer (1 to 50); ``None`` offers every provider the caller
        may connect. The user picks one, consents or types the credentials, and returns to ``return_url``.
        """
        return await self._t.send(
            _calls.create_connect_session(user_id, providers, return_url, connection_config, verify)
        )

    async def confirm_connection(self, flow_id: str, user_id: str) -> ConfirmedConnection:
        """From your verifier page: confirms that ``user_id`` (signed in to your application) asked for the connection.

        The same user: it activates; another: it fails with ``user_mismatch`` and nothing is kept. Send the
        browser to ``redirect_url`` either way. A ``flow_id`` works once (409 ``confirm_flow_used``).
        """
        return await self._t.send(_calls.confirm_connection(flow_id, user_id))

    async def check_connection(self, connection_id: str) -> ConnectionStatus:
        """The stored state of a connection (pending, active, attention_required, expired, revoked, failed)."""
        return await self._t.send(_calls.check_connection(connection_id))

    async def wait_for_active(
        self, connection_id: str, *, timeout: float = 300.0, poll_interval: float = 2.0
    ) -> ConnectionStatus:
        """Polls ``check_connection`` until the connection is active.

        Raises :class:`AttentionRequiredError` (the user must reconnect), :class:`ConnectionNotActiveError`
        (failed, revoked, expired) or :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        deadline = self._t.clock() + timeout
        while True:
            status = await self.check_connection(connection_id)
            check_wait(status, connection_id)
            if status.is_active:
                return status
            if self._t.clock() + poll_interval > deadline:
                raise WaitTimeoutError(f"Connection {connection_id} was still {status.status} after {timeout:g}s.")
            await self._t.sleep(poll_interval)

    async def get_token(self, connection_id: str) -> Credential:
        """A usable credential and the strategy to apply it (the broker refreshes first when expiring)."""
        return await self._t.send(_calls.get_token(connection_id))

    async def refresh_connection(self, connection_id: str) -> Credential:
        """Forces a refresh with the provider, then answers like ``get_token``."""
        return await self._t.send(_calls.refresh_connection(connection_id))

    async def resolve_token(self, workspace_id: str, provider_name: str) -> Credential:
        """The newest active connection of a workspace for a provider, answered like ``get_token``."""
        return await self._t.send(_calls.resolve_token(workspace_id, provider_name))

    async def revoke_connection(self, connection_id: str, *, reason: str | None = None) -> RevokeResult:
        """Revokes a connection (best-effort at the provider too); idempotent."""
        return await self._t.send(_calls.revoke_connection(connection_id, reason))

    async def list_providers(self) -> dict[str, dict[str, Any]]:
        """Providers an agent can request, grouped by auth type (``GET /v1/providers/metadata``)."""
        return await self._t.send(_calls.provider_metadata())

    # -- agent sessions --------------------------------------------------------------------------

    async def request_agent_session(
        self,
        scopes: Sequence[str],
        *,
        ttl_seconds: int | None = None,
        connection_id: str | None = None,
        agent_id: str | None = None,
    ) -> AgentSession:
        """Opens a bounded session with scopes within the agent's allowed scopes."""
        return await self._t.send(_calls.request_agent_session(scopes, ttl_seconds, connection_id, agent_id))

    async def request_obo_session(
        self,
        user_token: str,
        scopes: Sequence[str],
        *,
        ttl_seconds: int | None = None,
        connection_id: str | None = None,
        agent_id: str | None = None,
    ) -> AgentSession:
        """Opens an on-behalf-of session from a user's token issued by a trusted issuer."""
        return await self._t.send(_calls.request_obo_session(user_token, scopes, ttl_seconds, connection_id, agent_id))

    async def get_agent_session(self, session_id: str) -> AgentSession:
        return await self._t.send(_calls.get_agent_session(session_id))

    async def close_agent_session(self, session_id: str) -> AgentSession:
        """Closes a session: its session token fails introspection from now on."""
        return await self._t.send(_calls.close_agent_session(session_id))

    # -- user secrets ----------------------------------------------------------------------------

    async def read_secret(
        self,
        name: str,
        *,
        user_id: str | None = None,
        zone: str | None = None,
        version: int | None = None,
        session_token: str | None = None,
    ) -> UserSecret:
        """One user secret with its version. An agent reads either with a grant for that name
        (give ``user_id``) or while acting for the user (its OBO ``session_token``)."""
        return await self._t.send(_calls.get_secret(name, user_id, zone, version, session_token))

    async def get_secret(
        self,
        name: str,
        *,
        user_id: str | None = None,
        zone: str | None = None,
        version: int | None = None,
        session_token: str | None = None,
    ) -> str:
        """The value of one user secret (see :meth:`read_secret`)."""
        secret = await self.read_secret(name, user_id=user_id, zone=zone, version=version, session_token=session_token)
        return secret.value

    async def put_secret(
        self,
        name: str,
        value: str,
        *,
        description: str | None = None,
        user_id: str | None = None,
        zone: str | None = None,
        session_token: str | None = None,
    ) -> dict[str, Any]:
        """Creates a secret or adds a version (admin key with ``user_id``, or an OBO session)."""
        return await self._t.send(_calls.put_secret(name, value, description, user_id, zone, session_token))

    async def resolve_secrets(
        self,
        config: Any,
        *,
        user_id: str | None = None,
        zone: str | None = None,
        session_token: str | None = None,
        leave_unresolved: bool = False,
    ) -> Any:
        """A copy of ``config`` with every ``nexus-secret:NAME`` string (in nested dicts and lists)
        replaced by that user secret's value.

        With an API key or an OBO ``session_token`` this is one round trip
        (``POST /api/v2/secrets/resolve``); an agent without a session reads each name through its
        grants (``user_id`` required). Missing or disabled names raise :class:`UnresolvedSecretsError`
        unless ``leave_unresolved`` (then they stay as they are).
        """
        if self.uses_client_credentials and session_token is None:
            names = find_references(config)
            values: dict[str, str] = {}
            unresolved: list[dict[str, str]] = []
            for name in names:
                try:
                    values[name] = await self.get_secret(name, user_id=user_id, zone=zone)
                except NotFoundError:
                    unresolved.append({"name": name, "reason": "not_found"})
                except ConflictError:
                    unresolved.append({"name": name, "reason": "disabled"})
            return finish_resolution(config, values, unresolved, leave_unresolved)
        result = await self._t.send(_calls.resolve_secrets(config, user_id, zone, session_token, leave_unresolved))
        return result.config

    # -- bridge ----------------------------------------------------------------------------------

    def auth(
        self,
        connection_id: str | None = None,
        *,
        workspace_id: str | None = None,
        provider_name: str | None = None,
        refresh_skew: float = 60.0,
        clock: Clock | None = None,
    ) -> NexusAuth:
        """An ``httpx.Auth`` applying this connection's credential (see :class:`NexusAuth`)."""
        from .bridge import NexusAuth

        return NexusAuth(
            self,
            connection_id,
            workspace_id=workspace_id,
            provider_name=provider_name,
            refresh_skew=refresh_skew,
            clock=clock,
        )

    # sync: def requests_auth(
    # sync:     self,
    # sync:     connection_id: str | None = None,
    # sync:     *,
    # sync:     workspace_id: str | None = None,
    # sync:     provider_name: str | None = None,
    # sync:     refresh_skew: float = 60.0,
    # sync:     clock: Clock | None = None,
    # sync: ) -> NexusRequestsAuth:
    # sync:     """A ``requests`` auth applying this connection's credential (see :class:`NexusRequestsAuth`)."""
    # sync:     from .requests_auth import NexusRequestsAuth
    # sync:     return NexusRequestsAuth(
    # sync:         self,
    # sync:         connection_id,
    # sync:         workspace_id=workspace_id,
    # sync:         provider_name=provider_name,
    # sync:         refresh_skew=refresh_skew,
    # sync:         clock=clock,
    # sync:     )

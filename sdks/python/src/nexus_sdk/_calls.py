"""Descriptions of every broker call, shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ._core import Call
from .models import (
    AgentSession,
    AgentToken,
    ConfirmedConnection,
    ConnectionRequest,
    ConnectionStatus,
    ConnectSession,
    Credential,
    RevokeResult,
    SecretResolution,
    UserSecret,
)

SESSION_HEADER = "X-Nexus-Session"


def seg(value: str) -> str:
    """One path segment, percent-encoded."""
    if not isinstance(value, str) or value == "":
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="")


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _dict(body: Any) -> Mapping[str, Any]:
    return body if isinstance(body, dict) else {}


# ---- agent login -------------------------------------------------------------------------------


def agent_login(client_id: str, client_secret: str, scope: str | None, now: float) -> Call[AgentToken]:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    if scope:
        form["scope"] = scope
    return Call("POST", "/oauth/token", lambda b: AgentToken.from_dict(_dict(b), now), form=form, authenticated=False)


# ---- connections (agent API) -------------------------------------------------------------------


def request_connection(
    user_id: str,
    provider_name: str | None,
    provider_id: str | None,
    scopes: Sequence[str] | None,
    return_url: str,
    connection_config: Mapping[str, str] | None = None,
    verify: bool | None = None,
) -> Call[ConnectionRequest]:
    if (provider_name is None) == (provider_id is None):
        raise ValueError("give exactly one of provider_name and provider_id")
    body = _drop_none(
        {
            "user_id": user_id,
            "provider_name": provider_name,
            "provider_id": provider_id,
            "scopes": list(scopes) if scopes is not None else None,
            "return_url": return_url,
            "connection_config": dict(connection_config) if connection_config is not None else None,
            "verify": verify,
        }
    )
    return Call("POST", "/v1/request-connection", lambda b: ConnectionRequest.from_dict(_dict(b)), json_body=body)


def create_connect_session(
    user_id: str,
    providers: Sequence[str] | None,
    return_url: str,
    connection_config: Mapping[str, str] | None,
    verify: bool | None,
) -> Call[ConnectSession]:
    body = _drop_none(
        {
            "user_id": user_id,
            "providers": list(providers) if providers is not None else None,
            "return_url": return_url,
            "connection_config": dict(connection_config) if connection_config is not None else None,
            "verify": verify,
        }
    )
    return Call("POST", "/v1/connect-sessions", lambda b: ConnectSession.from_dict(_dict(b)), json_body=body)


def confirm_connection(flow_id: str, user_id: str) -> Call[ConfirmedConnection]:
    return Call(
        "POST",
        "/v1/connect/confirm",
        lambda b: ConfirmedConnection.from_dict(_dict(b)),
        json_body={"flow_id": flow_id, "user_id": user_id},
    )


def check_connection(connection_id: str) -> Call[ConnectionStatus]:
    return Call(
        "GET",
        f"/v1/check-connection/{seg(connection_id)}",
        lambda b: ConnectionStatus.from_dict(_dict(b), connection_id),
        connection_id=connection_id,
    )


def get_token(connection_id: str, prefix: str = "/v1/token/", suffix: str = "") -> Call[Credential]:
    return Call(
        "GET",
        f"{prefix}{seg(connection_id)}{suffix}",
        lambda b: Credential.from_dict(_dict(b)),
        connection_id=connection_id,
    )


def refresh_connection(connection_id: str, prefix: str = "/v1/refresh/", suffix: str = "") -> Call[Credential]:
    return Call(
        "POST",
        f"{prefix}{seg(connection_id)}{suffix}",
        lambda b: Credential.from_dict(_dict(b)),
        connection_id=connection_id,
    )


def resolve_token(workspace_id: str, provider_name: str, path: str = "/v1/resolve") -> Call[Credential]:
    return Call(
        "GET",
        path,
        lambda b: Credential.from_dict(_dict(b)),
        params={"workspace_id": workspace_id, "provider_name": provider_name},
    )


def revoke_connection(connection_id: str, reason: str | None, prefix: str = "/v1/connections/") -> Call[RevokeResult]:
    return Call(
        "DELETE",
        f"{prefix}{seg(connection_id)}",
        lambda b: RevokeResult.from_dict(_dict(b)),
        params=_drop_none({"reason": reason}) or None,
        connection_id=connection_id,
    )


def provider_metadata(path: str = "/v1/providers/metadata") -> Call[dict[str, dict[str, Any]]]:
    return Call("GET", path, lambda b: dict(_dict(b)))


# ---- agent sessions ----------------------------------------------------------------------------


def request_agent_session(
    scopes: Sequence[str], ttl_seconds: int | None, connection_id: str | None, agent_id: str | None
) -> Call[AgentSession]:
    body = _drop_none(
        {"scopes": list(scopes), "ttl_seconds": ttl_seconds, "connection_id": connection_id, "agent_id": agent_id}
    )
    return Call(
        "POST",
        "/v1/agent-sessions",
        lambda b: AgentSession.from_dict(_dict(b)),
        json_body=body,
        connection_id=connection_id,
    )


def request_obo_session(
    user_token: str, scopes: Sequence[str], ttl_seconds: int | None, connection_id: str | None, agent_id: str | None
) -> Call[AgentSession]:
    body = _drop_none(
        {
            "user_token": user_token,
            "scopes": list(scopes),
            "ttl_seconds": ttl_seconds,
            "connection_id": connection_id,
            "agent_id": agent_id,
        }
    )
    return Call(
        "POST",
        "/v1/agent-sessions/obo",
        lambda b: AgentSession.from_dict(_dict(b)),
        json_body=body,
        connection_id=connection_id,
    )


def get_agent_session(session_id: str) -> Call[AgentSession]:
    return Call("GET", f"/v1/agent-sessions/{seg(session_id)}", lambda b: AgentSession.from_dict(_dict(b)))


def close_agent_session(session_id: str) -> Call[AgentSession]:
    return Call("DELETE", f"/v1/agent-sessions/{seg(session_id)}", lambda b: AgentSession.from_dict(_dict(b)))


# ---- user secrets ------------------------------------------------------------------------------


def _owner(user_id: str | None, zone: str | None) -> dict[str, Any]:
    return _drop_none({"user_id": user_id, "zone": zone})


def _session_headers(session_token: str | None) -> dict[str, str] | None:
    return {SESSION_HEADER: session_token} if session_token else None


def get_secret(
    name: str, user_id: str | None, zone: str | None, version: int | None, session_token: str | None
) -> Call[UserSecret]:
    params = {**_owner(user_id, zone), **_drop_none({"version": version})}
    return Call(
        "GET",
        f"/api/v2/secrets/{seg(name)}",
        lambda b: UserSecret.from_dict(_dict(b)),
        params=params or None,
        headers=_session_headers(session_token),
    )


def resolve_secrets(
    config: Any, user_id: str | None, zone: str | None, session_token: str | None, leave_unresolved: bool
) -> Call[SecretResolution]:
    def parse(b: Any) -> SecretResolution:
        d = _dict(b)
        unresolved = [
            {"name": str(u.get("name", "")), "reason": str(u.get("reason", ""))}
            for u in d.get("unresolved") or []
            if isinstance(u, dict)
        ]
        return SecretResolution(config=d.get("config"), unresolved=unresolved)

    return Call(
        "POST",
        "/api/v2/secrets/resolve",
        parse,
        params=_owner(user_id, zone) or None,
        json_body={"config": config, "leave_unresolved": leave_unresolved},
        headers=_session_headers(session_token),
    )


def put_secret(
    name: str, value: str, description: str | None, user_id: str | None, zone: str | None, session_token: str | None
) -> Call[dict[str, Any]]:
    return Call(
        "POST",
        "/api/v2/secrets",
        lambda b: dict(_dict(b)),
        params=_owner(user_id, zone) or None,
        json_body=_drop_none({"name": name, "value": value, "description": description}),
        headers=_session_headers(session_token),
    )

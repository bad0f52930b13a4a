"""Descriptions of the operator API's calls (providers, agents, audit), shared by the sync and async admin clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._calls import _dict, _drop_none, seg
from ._core import Call
from .models import (
    Agent,
    AgentWithSecret,
    AuditEvent,
    AuditPage,
    ConnectionRequest,
    Provider,
    ProviderSummary,
)

# ---- admin: providers --------------------------------------------------------------------------


def create_provider(profile: Mapping[str, Any]) -> Call[str]:
    return Call("POST", "/providers", lambda b: str(_dict(b).get("id", "")), json_body={"profile": dict(profile)})


def list_providers() -> Call[list[ProviderSummary]]:
    return Call(
        "GET",
        "/providers",
        lambda b: [
            ProviderSummary(id=str(p.get("id", "")), name=str(p.get("name", "")))
            for p in (b or [])
            if isinstance(p, dict)
        ],
    )


def get_provider(provider_id: str) -> Call[Provider]:
    return Call("GET", f"/providers/{seg(provider_id)}", lambda b: Provider.from_dict(_dict(b)))


def provider_id_by_name(name: str) -> Call[str]:
    return Call("GET", f"/providers/by-name/{seg(name)}", lambda b: str(_dict(b).get("id", "")))


def replace_provider(provider_id: str, profile: Mapping[str, Any]) -> Call[Provider]:
    return Call(
        "PUT",
        f"/providers/{seg(provider_id)}",
        lambda b: Provider.from_dict(_dict(b)),
        json_body={"profile": dict(profile)},
    )


def patch_provider(provider_id: str, changes: Mapping[str, Any]) -> Call[Provider]:
    return Call(
        "PATCH",
        f"/providers/{seg(provider_id)}",
        lambda b: Provider.from_dict(_dict(b)),
        json_body={"profile": dict(changes)},
    )


def delete_provider(provider_id: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"/providers/{seg(provider_id)}", lambda b: dict(_dict(b)))


# ---- admin: connections ------------------------------------------------------------------------


def consent_spec(
    workspace_id: str, provider_id: str, scopes: Sequence[str] | None, return_url: str
) -> Call[ConnectionRequest]:
    body = _drop_none(
        {
            "workspace_id": workspace_id,
            "provider_id": provider_id,
            "scopes": list(scopes) if scopes is not None else None,
            "return_url": return_url,
        }
    )
    return Call("POST", "/auth/consent-spec", lambda b: ConnectionRequest.from_dict(_dict(b)), json_body=body)


# ---- admin: agents -----------------------------------------------------------------------------


def create_agent(body: Mapping[str, Any]) -> Call[AgentWithSecret]:
    def parse(b: Any) -> AgentWithSecret:
        d = _dict(b)
        secret = d.get("client_secret")
        return AgentWithSecret(agent=Agent.from_dict(d), client_secret=None if secret is None else str(secret))

    return Call("POST", "/admin/v1/agents", parse, json_body=_drop_none(dict(body)))


def list_agents() -> Call[list[Agent]]:
    return Call(
        "GET",
        "/admin/v1/agents",
        lambda b: [Agent.from_dict(a) for a in _dict(b).get("agents", []) if isinstance(a, dict)],
    )


def get_agent(agent_id: str) -> Call[Agent]:
    return Call("GET", f"/admin/v1/agents/{seg(agent_id)}", lambda b: Agent.from_dict(_dict(b)))


def update_agent(agent_id: str, changes: Mapping[str, Any], if_match: str | None) -> Call[Agent]:
    headers = {"If-Match": if_match} if if_match else None
    return Call(
        "PATCH",
        f"/admin/v1/agents/{seg(agent_id)}",
        lambda b: Agent.from_dict(_dict(b)),
        json_body=dict(changes),
        headers=headers,
    )


def delete_agent(agent_id: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"/admin/v1/agents/{seg(agent_id)}", lambda b: dict(_dict(b)))


def rotate_agent_secret(agent_id: str, overlap_seconds: int | None) -> Call[dict[str, Any]]:
    return Call(
        "POST",
        f"/admin/v1/agents/{seg(agent_id)}/secrets",
        lambda b: dict(_dict(b)),
        json_body=_drop_none({"overlap_seconds": overlap_seconds}),
    )


def revoke_agent_secret(agent_id: str, secret_id: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"/admin/v1/agents/{seg(agent_id)}/secrets/{seg(secret_id)}", lambda b: dict(_dict(b)))


# ---- admin: audit ------------------------------------------------------------------------------


def list_audit(
    event_type: str | None,
    actor: str | None,
    resource: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    cursor: str | None,
) -> Call[AuditPage]:
    params = _drop_none(
        {
            "event_type": event_type,
            "actor": actor,
            "resource": resource,
            "since": since,
            "until": until,
            "limit": limit,
            "cursor": cursor,
        }
    )

    def parse(b: Any) -> AuditPage:
        d = _dict(b)
        events = [AuditEvent.from_dict(e) for e in d.get("events", []) if isinstance(e, dict)]
        cursor_value = d.get("next_cursor")
        return AuditPage(events=events, next_cursor=None if cursor_value is None else str(cursor_value))

    return Call("GET", "/audit", parse, params=params or None)

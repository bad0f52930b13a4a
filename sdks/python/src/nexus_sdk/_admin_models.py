"""Dataclass models of the operator API's answers (providers, agents, audit); exported by ``models``.

As there: secrets are kept out of ``repr``, and ``raw`` holds the full JSON answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._parse import _opt_str, _str_list, parse_time


@dataclass(frozen=True)
class ProviderSummary:
    id: str
    name: str


@dataclass(frozen=True)
class Provider:
    """A provider as the admin API shows it (never its client secret)."""

    id: str
    name: str
    auth_type: str
    scopes: list[str]
    params: Mapping[str, Any]
    aliases: list[str]
    version: int
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provider:
        return cls(
            id=str(d.get("id", "")),
            name=str(d.get("name", "")),
            auth_type=str(d.get("auth_type", "")),
            scopes=_str_list(d.get("scopes")),
            params=dict(d.get("params") or {}),
            aliases=_str_list(d.get("aliases")),
            version=int(d.get("version", 0) or 0),
            raw=dict(d),
        )


@dataclass(frozen=True)
class Agent:
    """A registered agent (never its secrets)."""

    id: str
    agent_id: str
    description: str
    allowed_scopes: list[str]
    allowed_providers: list[str]
    allowed_workspaces: list[str]
    allowed_secrets: list[str]
    active: bool
    version: int
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Agent:
        return cls(
            id=str(d.get("id", "")),
            agent_id=str(d.get("agent_id", "")),
            description=str(d.get("description", "") or ""),
            allowed_scopes=_str_list(d.get("allowed_scopes")),
            allowed_providers=_str_list(d.get("allowed_providers")),
            allowed_workspaces=_str_list(d.get("allowed_workspaces")),
            allowed_secrets=_str_list(d.get("allowed_secrets")),
            active=bool(d.get("active", True)),
            version=int(d.get("version", 0) or 0),
            raw={k: v for k, v in d.items() if k != "client_secret"},
        )


@dataclass(frozen=True)
class AgentWithSecret:
    """A newly created agent and its client secret (shown once; hidden from ``repr``)."""

    agent: Agent
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    id: str
    occurred_at: datetime | None
    actor: str
    event_type: str
    resource_type: str
    resource_id: str | None
    outcome: str
    request_id: str | None
    details: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditEvent:
        return cls(
            seq=int(d.get("seq", 0) or 0),
            id=str(d.get("id", "")),
            occurred_at=parse_time(d.get("occurred_at")),
            actor=str(d.get("actor", "")),
            event_type=str(d.get("event_type", "")),
            resource_type=str(d.get("resource_type", "")),
            resource_id=_opt_str(d.get("resource_id")),
            outcome=str(d.get("outcome", "")),
            request_id=_opt_str(d.get("request_id")),
            details=d.get("details"),
            raw=dict(d),
        )


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None

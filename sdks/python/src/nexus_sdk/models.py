"""Dataclass models of the broker's answers.

Fields that hold secrets (access tokens, credentials, client secrets, secret values) are excluded
from ``repr`` so that logging a model never leaks them. Every model keeps the full JSON answer in
``raw`` (also hidden from ``repr``) for fields a newer broker may add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._admin_models import Agent, AgentWithSecret, AuditEvent, AuditPage, Provider, ProviderSummary
from ._parse import _opt_str, _str_list, parse_time

__all__ = [
    "ConnectionStatusValue",
    "StrategyType",
    "ConnectionRequest",
    "ConnectSession",
    "ConfirmedConnection",
    "ConnectionStatus",
    "Strategy",
    "Credential",
    "RevokeResult",
    "AgentToken",
    "AgentSession",
    "UserSecret",
    "SecretResolution",
    "ProviderSummary",
    "Provider",
    "Agent",
    "AgentWithSecret",
    "AuditEvent",
    "AuditPage",
    "parse_time",
]

ConnectionStatusValue = Literal["pending", "active", "attention_required", "expired", "revoked", "failed"]
StrategyType = Literal["oauth2", "header", "headers", "query_param", "basic_auth", "hmac_payload", "aws_sigv4"]


@dataclass(frozen=True)
class ConnectionRequest:
    """Answer of ``request_connection``: send the user to ``auth_url``."""

    auth_url: str
    state: str
    scopes: list[str]
    provider_id: str
    connection_id: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConnectionRequest:
        return cls(
            auth_url=str(d.get("authUrl") or d.get("auth_url") or ""),
            state=str(d.get("state", "")),
            scopes=_str_list(d.get("scopes")),
            provider_id=str(d.get("provider_id", "")),
            connection_id=str(d.get("connection_id", "")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class ConnectSession:
    """Answer of ``create_connect_session``: open ``url`` in the user's browser; it works once, until ``expires_at``.

    ``token`` is the capability inside ``url`` (the broker keeps only its hash), so it is left out of ``repr``.
    ``providers`` are what the page offers, as ``(id, name)`` pairs.
    """

    id: str
    url: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: datetime | None
    providers: list[tuple[str, str]]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConnectSession:
        offered = d.get("providers")
        return cls(
            id=str(d.get("id", "")),
            url=str(d.get("url", "")),
            token=str(d.get("token", "")),
            expires_at=parse_time(d.get("expires_at")),
            providers=[
                (str(p.get("id", "")), str(p.get("name", "")))
                for p in (offered if isinstance(offered, list) else [])
                if isinstance(p, Mapping)
            ],
            raw=dict(d),
        )


@dataclass(frozen=True)
class ConfirmedConnection:
    """Answer of ``confirm_connection``: send the browser to ``redirect_url`` (``None``: no longer allowed).

    ``status`` is ``active``, or ``failed`` with ``error`` (``user_mismatch``, ``connection_not_pending``)
    and ``provider_revoked`` (whether the provider accepted the revocation of the grant).
    """

    status: str
    connection_id: str
    error: str | None
    provider_revoked: bool | None
    redirect_url: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConfirmedConnection:
        revoked = d.get("provider_revoked")
        return cls(
            status=str(d.get("status", "")),
            connection_id=str(d.get("connection_id", "")),
            error=_opt_str(d.get("error")),
            provider_revoked=revoked if isinstance(revoked, bool) else None,
            redirect_url=_opt_str(d.get("redirect_url")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class ConnectionStatus:
    connection_id: str
    status: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], connection_id: str = "") -> ConnectionStatus:
        return cls(
            connection_id=str(d.get("connection_id") or connection_id), status=str(d.get("status", "")), raw=dict(d)
        )


@dataclass(frozen=True)
class Strategy:
    """What to apply to an upstream request (the v1 contract's strategies table)."""

    type: str
    config: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Strategy:
        d = d or {}
        config = d.get("config") or {}
        return cls(type=str(d.get("type", "oauth2")), config={str(k): str(v) for k, v in config.items()})


@dataclass(frozen=True)
class Credential:
    """A usable credential for a connection (answer of get_token, refresh_connection, resolve_token).

    ``credentials`` and ``access_token`` are secrets: hidden from ``repr``.
    """

    connection_id: str
    provider_id: str
    provider_name: str
    strategy: Strategy
    credentials: Mapping[str, str] = field(repr=False)
    expires_at: datetime | None
    access_token: str | None = field(default=None, repr=False)
    token_type: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def expires_at_epoch(self) -> float | None:
        return None if self.expires_at is None else self.expires_at.timestamp()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Credential:
        creds = d.get("credentials") or {}
        return cls(
            connection_id=str(d.get("connection_id", "")),
            provider_id=str(d.get("provider_id", "")),
            provider_name=str(d.get("provider_name", "")),
            strategy=Strategy.from_dict(d.get("strategy")),
            credentials={str(k): str(v) for k, v in creds.items()},
            expires_at=parse_time(d.get("expires_at")),
            access_token=_opt_str(d.get("access_token")),
            token_type=_opt_str(d.get("token_type")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class RevokeResult:
    connection_id: str
    status: str
    revoked_at: datetime | None
    already_revoked: bool
    provider_revoked: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RevokeResult:
        return cls(
            connection_id=str(d.get("connection_id", "")),
            status=str(d.get("status", "")),
            revoked_at=parse_time(d.get("revoked_at")),
            already_revoked=bool(d.get("already_revoked", False)),
            provider_revoked=bool(d.get("provider_revoked", False)),
            raw=dict(d),
        )


@dataclass(frozen=True)
class AgentToken:
    """An agent access token from ``POST /oauth/token`` (client credentials)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    obtained_at: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], obtained_at: float) -> AgentToken:
        return cls(
            access_token=str(d.get("access_token", "")),
            token_type=str(d.get("token_type", "Bearer")),
            expires_in=int(d.get("expires_in", 0) or 0),
            scope=str(d.get("scope", "") or ""),
            obtained_at=obtained_at,
        )


@dataclass(frozen=True)
class AgentSession:
    """A bounded agent session (plain or on-behalf-of). Tokens are hidden from ``repr``."""

    session_id: str
    agent_id: str
    connection_id: str | None
    scopes_granted: list[str]
    custom_scopes: list[str]
    provider_scopes: list[str]
    status: str
    created_at: datetime | None
    expires_at: datetime | None
    obo: bool
    acting_for: str | None
    tenant_id: str | None
    clearance_level: str | None
    session_token: str | None = field(default=None, repr=False)
    downscoped: bool | None = None
    access_token: str | None = field(default=None, repr=False)
    access_token_type: str | None = None
    access_token_expires_at: datetime | None = None
    access_token_scope: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AgentSession:
        downscoped = d.get("downscoped")
        return cls(
            session_id=str(d.get("session_id", "")),
            agent_id=str(d.get("agent_id", "")),
            connection_id=_opt_str(d.get("connection_id")),
            scopes_granted=_str_list(d.get("scopes_granted")),
            custom_scopes=_str_list(d.get("custom_scopes")),
            provider_scopes=_str_list(d.get("provider_scopes")),
            status=str(d.get("status", "")),
            created_at=parse_time(d.get("created_at")),
            expires_at=parse_time(d.get("expires_at")),
            obo=bool(d.get("obo", False)),
            acting_for=_opt_str(d.get("acting_for")),
            tenant_id=_opt_str(d.get("tenant_id")),
            clearance_level=_opt_str(d.get("clearance_level")),
            session_token=_opt_str(d.get("session_token")),
            downscoped=None if downscoped is None else bool(downscoped),
            access_token=_opt_str(d.get("access_token")),
            access_token_type=_opt_str(d.get("access_token_type")),
            access_token_expires_at=parse_time(d.get("access_token_expires_at")),
            access_token_scope=_opt_str(d.get("access_token_scope")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class UserSecret:
    """One version of a user secret; ``value`` is hidden from ``repr``."""

    name: str
    zone: str
    version: int
    value: str = field(repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UserSecret:
        return cls(
            name=str(d.get("name", "")),
            zone=str(d.get("zone", "default")),
            version=int(d.get("version", 0) or 0),
            value=str(d.get("value", "")),
        )


@dataclass(frozen=True)
class SecretResolution:
    """A config with its ``nexus-secret:NAME`` references replaced (hidden from ``repr``)."""

    config: Any = field(repr=False)
    unresolved: list[dict[str, str]] = field(default_factory=list)

"""Typed errors of the Nexus SDK.

Every error carries the HTTP ``status`` (``None`` when the broker was never reached), the broker's
stable error ``code`` and the ``request_id`` that identifies the request in the broker logs.
Messages are built only from the broker's caller-safe message, the code and ids: never from
tokens, client secrets, API keys or secret values.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NexusError",
    "ConfigurationError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "AttentionRequiredError",
    "ConnectionNotActiveError",
    "UnresolvedSecretsError",
    "RateLimitedError",
    "ServerError",
    "BrokerUnavailableError",
    "StrategyError",
    "WaitTimeoutError",
]


class NexusError(Exception):
    """Base class of every error raised by the SDK."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"status {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request_id {self.request_id}")
        return f"{self.message} ({', '.join(parts)})" if parts else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


class ConfigurationError(NexusError):
    """The client is missing configuration (URL or credential), detected at construction."""


class BadRequestError(NexusError):
    """400 or 422: the broker refused the request as malformed or invalid."""


class AuthenticationError(NexusError):
    """401: the API key, agent client credentials or agent access token were not accepted."""


class PermissionDeniedError(NexusError):
    """403: the credential is valid but may not perform that action."""


class NotFoundError(NexusError):
    """404: no such resource is visible to this credential."""


class ConflictError(NexusError):
    """409: the request conflicts with the current state."""


class AttentionRequiredError(ConflictError):
    """409 ``attention_required``: the provider no longer accepts the grant; the user must reconnect.

    Send the user through :meth:`NexusClient.request_connection` again to repair the connection.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        connection_id: str | None = None,
        status: int | None = 409,
        code: str | None = "attention_required",
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        target = f"connection {connection_id}" if connection_id else "this connection"
        text = message or (
            f"The user must reconnect {target}: the provider no longer accepts its grant. "
            "Send the user through request_connection again."
        )
        super().__init__(text, status=status, code=code, request_id=request_id, details=details)
        self.connection_id = connection_id


class ConnectionNotActiveError(ConflictError):
    """A connection ended in a state that cannot become active (failed, revoked, expired)."""

    def __init__(
        self,
        message: str,
        *,
        connection_id: str | None = None,
        status_value: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, details=details)
        self.connection_id = connection_id
        self.connection_status = status_value


class UnresolvedSecretsError(NexusError):
    """Some ``nexus-secret:NAME`` references could not be resolved (missing, deleted or disabled).

    ``unresolved`` lists ``{"name": ..., "reason": "not_found" | "disabled"}``; never values.
    """

    def __init__(
        self,
        message: str,
        *,
        unresolved: list[dict[str, str]],
        status: int | None = None,
        code: str | None = "unresolved_secrets",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, details=unresolved)
        self.unresolved = unresolved


class RateLimitedError(NexusError):
    """429 after the configured retries; ``retry_after`` is the broker's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str | None = None,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, details=details)
        self.retry_after = retry_after


class ServerError(NexusError):
    """5xx from the broker."""


class BrokerUnavailableError(ServerError):
    """The broker could not be reached, or answered 502/503/504, after the configured retries."""


class StrategyError(NexusError):
    """The credential's strategy cannot be applied to this request (missing field, streaming body)."""


class WaitTimeoutError(NexusError):
    """``wait_for_active`` gave up before the connection became active."""

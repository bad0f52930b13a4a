"""Transport-independent pieces shared by the sync and async clients: call descriptions, error
mapping, backoff and Retry-After parsing, and the checks ``wait_for_active`` and ``resolve_secrets``
make between calls.

The clients are thin layers over this module and :mod:`._calls` (which builds every request and
parses every answer). The async layer (``async_client.py``, ``async_admin.py``,
``_async_transport.py``) is the one written by hand; the sync layer (``client.py``, ``admin.py``,
``_sync_transport.py``) is generated from it by ``scripts/generate_sync.py`` (see the README's
"Development" section)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx

from ._config import RetryPolicy
from .errors import (
    AttentionRequiredError,
    AuthenticationError,
    BadRequestError,
    BrokerUnavailableError,
    ConflictError,
    ConnectionNotActiveError,
    NexusError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnresolvedSecretsError,
)
from .models import ConnectionStatus
from .secrets import replace_references

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: A 502 or 504 may come after the broker did the work (a refresh, a revocation): retried only when idempotent.
#: 429 and 503 mean the request was not processed: always retried.
IDEMPOTENT_ONLY_STATUSES = frozenset({502, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REQUEST_ID_HEADER = "x-request-id"
USER_AGENT = "nexus-broker-sdk-python/0.1.0"
#: Connection states ``wait_for_active`` gives up on.
TERMINAL_STATUSES = frozenset({"failed", "revoked", "expired"})


@dataclass
class Call(Generic[T]):
    """One broker call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    form: Mapping[str, str] | None = field(default=None, repr=False)
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    #: The connection the call is about, so a 409 attention_required can name it.
    connection_id: str | None = None
    #: False for the agent login itself (it authenticates in its body).
    authenticated: bool = True


def backoff_delay(policy: RetryPolicy, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: half of the capped delay fixed, half random."""
    ceiling = min(policy.backoff_max, policy.backoff_base * (2.0 ** min(attempt, 30)))
    return ceiling / 2 + rng() * ceiling / 2


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds (RFC 9110 §10.2.3: delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def retryable_status(status: int, method: str) -> bool:
    """Whether an answer with this status may be retried for this method."""
    if status not in RETRY_STATUSES:
        return False
    return status not in IDEMPOTENT_ONLY_STATUSES or method.upper() in IDEMPOTENT


def retryable_transport_error(exc: httpx.TransportError, method: str) -> bool:
    """Connect failures never reached the broker: always safe to retry. Others only when idempotent."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return True
    if isinstance(
        exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)
    ):
        return method.upper() in IDEMPOTENT
    return False


def unreachable_error(base_url: str, exc: httpx.TransportError, attempts: int) -> BrokerUnavailableError:
    kind = type(exc).__name__
    return BrokerUnavailableError(
        f"The Nexus broker at {base_url} could not be reached ({kind}) after {attempts} attempt(s)."
    )


def _body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def error_from_response(
    response: httpx.Response, connection_id: str | None = None, now: Callable[[], float] = time.time
) -> NexusError:
    """Maps a broker error answer to a typed error. Only caller-safe fields are used."""
    status = response.status_code
    body = _body(response)
    code: str | None = None
    message: str | None = None
    details: Any = None
    request_id = response.headers.get(REQUEST_ID_HEADER)
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        raw_message = body.get("message") or body.get("error_description")
        message = raw_message if isinstance(raw_message, str) else None
        details = body.get("details")
        if request_id is None and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    text = message or f"The broker answered {status}."
    common: dict[str, Any] = {"status": status, "code": code, "request_id": request_id, "details": details}

    if status == 409 and code == "attention_required":
        return AttentionRequiredError(connection_id=connection_id, request_id=request_id, details=details)
    if code == "unresolved_secrets":
        unresolved = []
        source = details.get("unresolved") if isinstance(details, dict) else None
        if isinstance(source, list):
            unresolved = [
                {"name": str(u.get("name", "")), "reason": str(u.get("reason", ""))}
                for u in source
                if isinstance(u, dict)
            ]
        names = ", ".join(u["name"] for u in unresolved) or "some references"
        return UnresolvedSecretsError(
            f"Unresolved secret references: {names}.", unresolved=unresolved, status=status, request_id=request_id
        )
    if status in (400, 422):
        return BadRequestError(text, **common)
    if status == 401:
        return AuthenticationError(text, **common)
    if status == 403:
        return PermissionDeniedError(text, **common)
    if status == 404:
        return NotFoundError(text, **common)
    if status == 409:
        return ConflictError(text, **common)
    if status == 429:
        return RateLimitedError(text, retry_after=parse_retry_after(response.headers.get("retry-after"), now), **common)
    if status in (502, 503, 504):
        return BrokerUnavailableError(text, **common)
    if status >= 500:
        return ServerError(text, **common)
    return NexusError(text, **common)


def decode_json(response: httpx.Response) -> Any:
    body = _body(response)
    if body is None and response.content:
        raise NexusError(
            "The broker answered with a body that is not JSON.",
            status=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        )
    return body


def check_wait(status: ConnectionStatus, connection_id: str) -> None:
    """Raises when a connection being waited for will not become active."""
    if status.status == "attention_required":
        raise AttentionRequiredError(connection_id=connection_id, status=None)
    if status.status in TERMINAL_STATUSES:
        raise ConnectionNotActiveError(
            f"Connection {connection_id} is {status.status}; it will not become active.",
            connection_id=connection_id,
            status_value=status.status,
        )


def finish_resolution(
    config: Any, values: Mapping[str, str], unresolved: list[dict[str, str]], leave_unresolved: bool
) -> Any:
    """``config`` with its secret references replaced, or :class:`UnresolvedSecretsError`."""
    if unresolved and not leave_unresolved:
        names = ", ".join(u["name"] for u in unresolved)
        raise UnresolvedSecretsError(f"Unresolved secret references: {names}.", unresolved=unresolved)
    return replace_references(config, values)

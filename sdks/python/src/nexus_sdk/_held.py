"""What the persistent-connection bridge (:func:`nexus_sdk.websocket.maintain_websocket`, the original's
nexus-bridge) shares: the reconnect policy, the typed errors, which broker failures are permanent, the
metrics hooks, and the credential each maintained connection holds (refreshed ahead of expiry,
single-flight). The Go SDK's ``Bridge`` (sdks/go/bridge_conn.go) is the reference behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from .errors import (
    AttentionRequiredError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NexusError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    StrategyError,
)
from .models import Credential

__all__ = [
    "BridgeMetrics",
    "DisconnectReason",
    "PermanentConnectionError",
    "ReconnectPolicy",
    "TokenProvider",
]

#: A credential kept after a failed refresh is used this long (s) before the refresh is tried again.
STALE_RETRY = 5.0
#: A credential is never refreshed sooner than this (s) after it was read.
_MIN_FRESH = 5.0
#: A credential without ``expires_at`` (a static one) is read again this often (s).
_STATIC_REREAD = 300.0

DisconnectReason = Literal["dropped", "unauthorized", "refresh", "too_large", "permanent", "closed"]


class TokenProvider(Protocol):
    """Where a maintained connection reads its credential. :class:`AsyncNexusClient` is one."""

    def get_token(self, connection_id: str) -> Awaitable[Credential]: ...
    def refresh_connection(self, connection_id: str) -> Awaitable[Credential]: ...


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a maintained connection waits before it is opened again: attempt n (from 0) waits
    ``min_backoff·2ⁿ`` seconds, at most ``max_backoff``, jittered to a random value between half and
    all of it (so that many agents dropped at once do not come back in step). A connection that stayed
    up ``reset_after`` seconds starts again from ``min_backoff``."""

    min_backoff: float = 1.0
    max_backoff: float = 30.0
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if self.min_backoff <= 0 or self.max_backoff < self.min_backoff or self.reset_after <= 0:
            raise ValueError("ReconnectPolicy needs 0 < min_backoff <= max_backoff and reset_after > 0")

    def delay(self, attempt: int) -> float:
        """The wait in seconds before attempt ``attempt`` (0 for the first retry)."""
        capped = self.max_backoff if attempt >= 30 else min(self.max_backoff, self.min_backoff * 2**attempt)
        return capped / 2 + random.random() * (capped / 2)


class PermanentConnectionError(NexusError):
    """Ends :func:`maintain_websocket`: trying again cannot help.

    ``__cause__`` says why: an :class:`AttentionRequiredError` (the user must reconnect their account),
    a :class:`ConflictError` ``connection_not_active`` or a :class:`NotFoundError` (the connection was
    revoked or deleted), a :class:`StrategyError` (no form for this transport), or the
    ``websockets.exceptions.ConnectionClosed`` of a permanent close code (``close_code``).
    """

    def __init__(
        self, connection_id: str, reason: str, *, code: str, cause: BaseException, close_code: int = 0
    ) -> None:
        super().__init__(f"Connection {connection_id} stopped ({reason}): {cause}", code=code)
        self.connection_id = connection_id
        #: A short, stable description ("attention required", "close code 1008", ...).
        self.reason = reason
        #: The WebSocket close code that ended the connection, 0 if none.
        self.close_code = close_code
        self.__cause__ = cause


def permanent_credential_error(exc: BaseException) -> bool:
    """Whether a failure to read the credential means no later attempt can succeed: the grant is gone
    (attention_required), the connection is not active any more (revoked, expired), unknown, not this
    agent's to use, or its credential cannot be applied. An unreachable or failing broker, a rate
    limit, a refresh in progress are temporary."""
    if isinstance(exc, (AttentionRequiredError, StrategyError)):
        return True
    if isinstance(exc, ConflictError):
        return exc.code == "connection_not_active"
    return isinstance(exc, (NotFoundError, PermissionDeniedError, AuthenticationError, BadRequestError))


def credential_stop(connection_id: str, exc: BaseException) -> PermanentConnectionError:
    """The permanent error for a credential the broker will not give."""
    if isinstance(exc, AttentionRequiredError):
        reason = "attention required"
    elif isinstance(exc, ConflictError) and exc.code == "connection_not_active":
        reason = "connection not active"
    elif isinstance(exc, NotFoundError):
        reason = "connection not found"
    elif isinstance(exc, StrategyError):
        reason = "strategy not applicable"
    else:
        reason = "credential refused by the broker"
    code = exc.code if isinstance(exc, NexusError) and exc.code else "credential_refused"
    if isinstance(exc, StrategyError):
        code = "strategy_not_applicable"
    return PermanentConnectionError(connection_id, reason, code=code, cause=exc)


class BridgeMetrics:
    """Receives the events of maintained connections; subclass and override what you count (the Go
    SDK's ``BridgeMetrics``). ``transport`` is ``"websocket"``. Every method does nothing here."""

    def inc_connections(self, transport: str) -> None:
        """A connection was established (a handshake that succeeded)."""

    def inc_disconnects(self, transport: str, reason: DisconnectReason) -> None:
        """A connection ended: ``dropped``, ``unauthorized``, ``refresh``, ``too_large``, ``permanent``
        or ``closed`` (the caller cancelled)."""

    def inc_token_refreshes(self, transport: str, result: Literal["ok", "error"]) -> None:
        """The credential was refreshed ahead of expiry or after the server refused it."""

    def set_connection_status(self, transport: str, connection_id: str, up: bool) -> None:
        """Whether a maintained connection is up."""


def same_credential(a: Credential, b: Credential) -> bool:
    """Whether two credentials apply the same secret material."""
    return a.strategy == b.strategy and a.access_token == b.access_token and dict(a.credentials) == dict(b.credentials)


def fresh_until(now: float, expires_at: float, buffer: float) -> float:
    """When a credential that expires at ``expires_at`` stops being fresh: ``buffer`` before it, but
    never less than half of its remaining life (a short-lived credential is not refreshed on every use)
    nor less than 5 s."""
    remaining = expires_at - now
    return now + max(remaining - buffer, remaining / 2, _MIN_FRESH)


_Reason = Literal["initial", "stale", "forced"]


class HeldCredential:
    """The credential of one maintained connection: cached until shortly before it expires, fetched
    once however many users want it at the same moment (one shared task), with a generation number so
    that a credential the server refused is refreshed once, not once per report."""

    def __init__(
        self,
        tp: TokenProvider,
        connection_id: str,
        *,
        refresh_buffer: float,
        clock: Callable[[], float] | None,
        metrics: BridgeMetrics,
        transport: str = "websocket",
    ) -> None:
        self._tp = tp
        self._id = connection_id
        self._buffer = refresh_buffer
        self._clock = clock or time.time
        self._metrics = metrics
        self._transport = transport
        self._val: Credential | None = None
        self._fresh_until = 0.0
        self._gen = 0
        self._inflight: asyncio.Task[tuple[Credential, int]] | None = None
        #: The next fetch reads the credential (get_token) instead of refreshing it.
        self._reread_next = False

    @property
    def next_refresh(self) -> float:
        return self._fresh_until

    async def current(self) -> tuple[Credential, int]:
        """A fresh credential and its generation."""
        return await self._get(None)

    async def refused(self, gen: int) -> tuple[Credential, int]:
        """After the server refused the credential of generation ``gen``: refreshed unless a newer one exists."""
        return await self._get(gen)

    async def reread(self) -> tuple[Credential, int]:
        """Reads the credential from the broker again (get_token, not a refresh): before a connection
        is opened again after a drop, so that a connection revoked meanwhile stops the loop instead of
        being used with a cached credential. A still-valid cached one is used if the broker is down."""
        self._reread_next = True
        self._fresh_until = 0.0
        return await self._get(None)

    async def _get(self, stale_gen: int | None) -> tuple[Credential, int]:
        task = self._inflight
        if task is None:
            val = self._val
            reason: _Reason
            if val is None:
                reason = "initial"
            elif stale_gen is not None and stale_gen == self._gen:
                reason = "forced"
            elif self._clock() < self._fresh_until:
                return val, self._gen
            else:
                reason = "stale"
            task = asyncio.get_running_loop().create_task(self._flight(reason, val))
            self._inflight = task
        # A waiter that is cancelled does not cancel the shared fetch: others may wait for it.
        return await asyncio.shield(task)

    async def _flight(self, reason: _Reason, prev: Credential | None) -> tuple[Credential, int]:
        try:
            try:
                credential = await self._fetch(reason, prev)
            except Exception as exc:
                # Refreshing ahead of expiry failed but the credential still works: use it a little longer.
                until = self._keep_until(prev, exc) if reason == "stale" and prev is not None else None
                if until is None or prev is None:
                    raise
                self._fresh_until = until
                return prev, self._gen
            self._val = credential
            self._gen += 1
            now = self._clock()
            expires = credential.expires_at_epoch()
            self._fresh_until = now + _STATIC_REREAD if expires is None else fresh_until(now, expires, self._buffer)
            return credential, self._gen
        finally:
            self._inflight = None

    async def _fetch(self, reason: _Reason, prev: Credential | None) -> Credential:
        """Reads the first time; later makes the broker refresh an OAuth credential, or reads a static one again."""
        reread, self._reread_next = self._reread_next, False
        if reason == "initial" or reread:
            return await self._tp.get_token(self._id)
        try:
            if prev is not None and prev.strategy.type == "oauth2":
                try:
                    credential = await self._tp.refresh_connection(self._id)
                except ConflictError as exc:
                    if exc.code != "refresh_not_supported":
                        raise
                    credential = await self._tp.get_token(self._id)
            else:
                credential = await self._tp.get_token(self._id)
        except Exception:
            self._metrics.inc_token_refreshes(self._transport, "error")
            raise
        self._metrics.inc_token_refreshes(self._transport, "ok")
        return credential

    def _keep_until(self, prev: Credential, exc: BaseException) -> float | None:
        """A credential whose refresh failed because the broker was unreachable or answered 5xx may be
        used until it actually expires (the refresh retried every STALE_RETRY)."""
        if not isinstance(exc, ServerError):
            return None
        now = self._clock()
        expires = prev.expires_at_epoch()
        if expires is None:
            return now + STALE_RETRY
        return min(now + STALE_RETRY, expires) if now < expires else None

    async def refresh_loop(
        self,
        last: Credential,
        changed: Callable[[Credential], Awaitable[None]],
        log: logging.LoggerAdapter[logging.Logger],
    ) -> BaseException:
        """Refreshes the credential ahead of its expiry until cancelled, awaiting ``changed`` with each
        credential that differs from the one before. Returns only a permanent failure; a temporary one
        keeps the still-valid credential and is tried again."""
        while True:
            await asyncio.sleep(max(self._fresh_until - self._clock(), 0.05))
            try:
                credential, _ = await self.current()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if permanent_credential_error(exc):
                    log.error("credential refresh failed for good: %s", exc)
                    return exc
                log.warning("credential refresh failed; trying again: %s", exc)
                await asyncio.sleep(STALE_RETRY)
                continue
            if not same_credential(last, credential):
                log.info("credential refreshed (expires at %s)", credential.expires_at)
                last = credential
                await changed(credential)


def log_adapter(logger: logging.Logger, fields: Mapping[str, object]) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose records carry ``fields`` (connection_id, transport, endpoint) as attributes."""
    return logging.LoggerAdapter(logger, dict(fields))

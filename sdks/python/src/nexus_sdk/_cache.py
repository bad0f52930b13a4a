"""The bridge's credential cache: cached until shortly before ``expires_at``, refreshed once for all
waiters (single-flight), refreshed once more after an upstream 401."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import ConflictError, ServerError
from .models import Credential

Clock = Callable[[], float]


class SyncBroker(Protocol):
    def get_token(self, connection_id: str) -> Credential: ...
    def refresh_connection(self, connection_id: str) -> Credential: ...
    def resolve_token(self, workspace_id: str, provider_name: str) -> Credential: ...


class AsyncBroker(Protocol):
    def get_token(self, connection_id: str) -> Awaitable[Credential]: ...
    def refresh_connection(self, connection_id: str) -> Awaitable[Credential]: ...
    def resolve_token(self, workspace_id: str, provider_name: str) -> Awaitable[Credential]: ...


@dataclass(frozen=True)
class _Entry:
    credential: Credential
    #: When to refresh (epoch seconds of the injected clock); None: never by time.
    refresh_at: float | None


class _Target:
    """Which connection: an id, or the newest active one of a workspace for a provider."""

    def __init__(
        self,
        connection_id: str | None,
        workspace_id: str | None,
        provider_name: str | None,
        refresh_skew: float,
        clock: Clock | None,
    ) -> None:
        if connection_id is None and (workspace_id is None or provider_name is None):
            raise ValueError("give a connection_id, or both workspace_id and provider_name")
        if connection_id is not None and (workspace_id is not None or provider_name is not None):
            raise ValueError("give a connection_id, or workspace_id and provider_name, not both")
        if refresh_skew < 0:
            raise ValueError("refresh_skew must be 0 or more")
        self.connection_id = connection_id
        self.workspace_id = workspace_id
        self.provider_name = provider_name
        self.skew = refresh_skew
        self.clock: Clock = clock or time.time
        self.entry: _Entry | None = None

    def describe(self) -> str:
        if self.connection_id is not None:
            return f"connection_id={self.connection_id!r}"
        return f"workspace_id={self.workspace_id!r}, provider_name={self.provider_name!r}"

    def store(self, credential: Credential) -> Credential:
        """Caches a credential until ``expires_at - skew`` (or half its remaining life, if shorter)."""
        expires = credential.expires_at_epoch()
        refresh_at: float | None = None
        if expires is not None:
            remaining = max(0.0, expires - self.clock())
            refresh_at = expires - min(self.skew, remaining / 2)
        self.entry = _Entry(credential, refresh_at)
        return credential

    def fresh(self) -> Credential | None:
        entry = self.entry
        if entry is None:
            return None
        if entry.refresh_at is not None and self.clock() >= entry.refresh_at:
            return None
        return entry.credential

    def still_valid(self, credential: Credential) -> bool:
        """True while ``credential`` has not reached its ``expires_at`` (or has none)."""
        expires = credential.expires_at_epoch()
        return expires is None or self.clock() < expires

    def id_for_refresh(self, used: Credential | None) -> str | None:
        if used is not None and used.connection_id:
            return used.connection_id
        return self.connection_id


def _keep_cached(target: _Target, cached: Credential, exc: ServerError) -> Credential:
    """A refresh ahead of expiry failed because the broker is unavailable (5xx, unreachable): the
    cached credential is used while it has not expired (the entry stays stale, so the next request
    tries the refresh again); once it has expired the error is raised."""
    if not target.still_valid(cached):
        raise exc
    return cached


def _refresh_unsupported(exc: ConflictError) -> bool:
    # Static credentials (and grants without a refresh token) cannot be refreshed: fetch them again.
    return exc.code == "refresh_not_supported"


class SyncCredentialSource:
    """Thread-safe credential cache over a sync client (one lock: one fetch for many waiters)."""

    def __init__(self, broker: SyncBroker, target: _Target) -> None:
        self._broker = broker
        self._target = target
        self._lock = threading.Lock()

    @property
    def target(self) -> _Target:
        return self._target

    def current(self) -> Credential:
        cached = self._target.fresh()
        if cached is not None:
            return cached
        with self._lock:
            cached = self._target.fresh()
            if cached is not None:
                return cached
            entry = self._target.entry
            if entry is None:
                return self._target.store(self._fetch())
            try:
                return self._target.store(self._refresh(entry.credential))
            except ServerError as exc:
                return _keep_cached(self._target, entry.credential, exc)

    def after_unauthorized(self, used: Credential) -> Credential:
        """The upstream refused ``used``: refresh (once, however many requests saw the 401)."""
        with self._lock:
            entry = self._target.entry
            if entry is not None and entry.credential is not used:
                fresh = self._target.fresh()
                if fresh is not None:
                    return fresh
            return self._target.store(self._refresh(used))

    def _fetch(self) -> Credential:
        t = self._target
        if t.connection_id is not None:
            return self._broker.get_token(t.connection_id)
        assert t.workspace_id is not None and t.provider_name is not None
        return self._broker.resolve_token(t.workspace_id, t.provider_name)

    def _refresh(self, used: Credential) -> Credential:
        connection_id = self._target.id_for_refresh(used)
        if connection_id is None:
            return self._fetch()
        try:
            return self._broker.refresh_connection(connection_id)
        except ConflictError as exc:
            if not _refresh_unsupported(exc):
                raise
            return self._fetch()


class AsyncCredentialSource:
    """The same cache over an async client, with an ``asyncio.Lock``."""

    def __init__(self, broker: AsyncBroker, target: _Target) -> None:
        self._broker = broker
        self._target = target
        self._lock: asyncio.Lock | None = None

    @property
    def target(self) -> _Target:
        return self._target

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def current(self) -> Credential:
        cached = self._target.fresh()
        if cached is not None:
            return cached
        async with self._get_lock():
            cached = self._target.fresh()
            if cached is not None:
                return cached
            entry = self._target.entry
            if entry is None:
                return self._target.store(await self._fetch())
            try:
                return self._target.store(await self._refresh(entry.credential))
            except ServerError as exc:
                return _keep_cached(self._target, entry.credential, exc)

    async def after_unauthorized(self, used: Credential) -> Credential:
        async with self._get_lock():
            entry = self._target.entry
            if entry is not None and entry.credential is not used:
                fresh = self._target.fresh()
                if fresh is not None:
                    return fresh
            return self._target.store(await self._refresh(used))

    async def _fetch(self) -> Credential:
        t = self._target
        if t.connection_id is not None:
            return await self._broker.get_token(t.connection_id)
        assert t.workspace_id is not None and t.provider_name is not None
        return await self._broker.resolve_token(t.workspace_id, t.provider_name)

    async def _refresh(self, used: Credential) -> Credential:
        connection_id = self._target.id_for_refresh(used)
        if connection_id is None:
            return await self._fetch()
        try:
            return await self._broker.refresh_connection(connection_id)
        except ConflictError as exc:
            if not _refresh_unsupported(exc):
                raise
            return await self._fetch()

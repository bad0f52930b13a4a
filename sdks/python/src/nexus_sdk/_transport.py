"""HTTP transports (sync and async): authentication to the broker, bounded retries, error mapping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from . import _calls
from ._config import ResolvedConfig, RetryPolicy
from ._core import (
    USER_AGENT,
    Call,
    backoff_delay,
    decode_json,
    error_from_response,
    parse_retry_after,
    retryable_status,
    retryable_transport_error,
    unreachable_error,
)
from .errors import AuthenticationError
from .models import AgentToken

T = TypeVar("T")

Clock = Callable[[], float]
SyncSleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]

#: An agent token is renewed this long before it expires (at most half its lifetime).
DEFAULT_TOKEN_SKEW = 30.0


class _Base:
    def __init__(
        self,
        cfg: ResolvedConfig,
        policy: RetryPolicy,
        timeout: float,
        clock: Clock | None,
        scope: str | None,
        token_skew: float,
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.timeout = httpx.Timeout(timeout)
        self.clock: Clock = clock or time.time
        self.scope = scope
        self.token_skew = token_skew
        self._token: AgentToken | None = None

    def _fresh(self, token: AgentToken) -> bool:
        skew = min(self.token_skew, token.expires_in / 2)
        return self.clock() < token.obtained_at + token.expires_in - skew

    def _api_key_headers(self) -> dict[str, str]:
        assert self.cfg.api_key is not None
        return {"X-API-Key": self.cfg.api_key}

    def _login_call(self) -> Call[AgentToken]:
        assert self.cfg.client_id is not None and self.cfg.client_secret is not None
        return _calls.agent_login(self.cfg.client_id, self.cfg.client_secret, self.scope, self.clock())

    def _request_kwargs(self, call: Call[Any], auth_headers: dict[str, str]) -> dict[str, Any]:
        headers = {"Accept": "application/json", **auth_headers, **(call.headers or {})}
        kwargs: dict[str, Any] = {"headers": headers, "timeout": self.timeout}
        if call.params:
            kwargs["params"] = {k: str(v).lower() if isinstance(v, bool) else v for k, v in call.params.items()}
        if call.form is not None:
            kwargs["data"] = dict(call.form)
        elif call.json_body is not None:
            kwargs["json"] = call.json_body
        return kwargs

    def _retry_wait(self, response: httpx.Response, attempt: int, method: str) -> float | None:
        """Seconds to wait before retrying this answer, or None when it must not be retried."""
        if not retryable_status(response.status_code, method) or attempt >= self.policy.max_retries:
            return None
        hint = parse_retry_after(response.headers.get("retry-after"), self.clock)
        if hint is not None:
            return hint if hint <= self.policy.max_retry_after else None
        return backoff_delay(self.policy, attempt)

    def _parse(self, call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            raise error_from_response(response, call.connection_id, self.clock)
        return call.parse(decode_json(response))


class SyncTransport(_Base):
    def __init__(
        self,
        cfg: ResolvedConfig,
        policy: RetryPolicy,
        timeout: float,
        http_client: httpx.Client | None,
        clock: Clock | None,
        sleep: SyncSleep | None,
        scope: str | None = None,
        token_skew: float = DEFAULT_TOKEN_SKEW,
    ) -> None:
        super().__init__(cfg, policy, timeout, clock, scope, token_skew)
        self.http = http_client or httpx.Client(timeout=self.timeout, headers={"User-Agent": USER_AGENT})
        self._owns_http = http_client is None
        self.sleep: SyncSleep = sleep or time.sleep
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def agent_token(self, stale: AgentToken | None = None) -> AgentToken:
        """The cached agent token, logging in (once, for all waiting threads) when needed."""
        with self._lock:
            token = self._token
            if token is not None and token is not stale and self._fresh(token):
                return token
            self._token = None
            token = self._execute(self._login_call(), {})
            self._token = token
            return token

    def send(self, call: Call[T]) -> T:
        relogged = False
        while True:
            used: AgentToken | None = None
            headers: dict[str, str] = {}
            if call.authenticated:
                if self.cfg.uses_client_credentials:
                    used = self.agent_token()
                    headers["Authorization"] = f"Bearer {used.access_token}"
                else:
                    headers = self._api_key_headers()
            try:
                return self._execute(call, headers)
            except AuthenticationError:
                # An agent token can be revoked or expire early: log in again, once.
                if used is None or relogged:
                    raise
                relogged = True
                self.agent_token(stale=used)

    def _execute(self, call: Call[T], auth_headers: dict[str, str]) -> T:
        url = self.cfg.base_url + call.path
        kwargs = self._request_kwargs(call, auth_headers)
        attempt = 0
        while True:
            try:
                response = self.http.request(call.method, url, **kwargs)
            except httpx.TransportError as exc:
                if retryable_transport_error(exc, call.method) and attempt < self.policy.max_retries:
                    self.sleep(backoff_delay(self.policy, attempt))
                    attempt += 1
                    continue
                raise unreachable_error(self.cfg.base_url, exc, attempt + 1) from None
            wait = self._retry_wait(response, attempt, call.method)
            if wait is not None:
                self.sleep(wait)
                attempt += 1
                continue
            return self._parse(call, response)


class AsyncTransport(_Base):
    def __init__(
        self,
        cfg: ResolvedConfig,
        policy: RetryPolicy,
        timeout: float,
        http_client: httpx.AsyncClient | None,
        clock: Clock | None,
        sleep: AsyncSleep | None,
        scope: str | None = None,
        token_skew: float = DEFAULT_TOKEN_SKEW,
    ) -> None:
        super().__init__(cfg, policy, timeout, clock, scope, token_skew)
        self.http = http_client or httpx.AsyncClient(timeout=self.timeout, headers={"User-Agent": USER_AGENT})
        self._owns_http = http_client is None
        self.sleep: AsyncSleep = sleep or asyncio.sleep
        self._lock: asyncio.Lock | None = None

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def agent_token(self, stale: AgentToken | None = None) -> AgentToken:
        async with self._get_lock():
            token = self._token
            if token is not None and token is not stale and self._fresh(token):
                return token
            self._token = None
            token = await self._execute(self._login_call(), {})
            self._token = token
            return token

    async def send(self, call: Call[T]) -> T:
        relogged = False
        while True:
            used: AgentToken | None = None
            headers: dict[str, str] = {}
            if call.authenticated:
                if self.cfg.uses_client_credentials:
                    used = await self.agent_token()
                    headers["Authorization"] = f"Bearer {used.access_token}"
                else:
                    headers = self._api_key_headers()
            try:
                return await self._execute(call, headers)
            except AuthenticationError:
                if used is None or relogged:
                    raise
                relogged = True
                await self.agent_token(stale=used)

    async def _execute(self, call: Call[T], auth_headers: dict[str, str]) -> T:
        url = self.cfg.base_url + call.path
        kwargs = self._request_kwargs(call, auth_headers)
        attempt = 0
        while True:
            try:
                response = await self.http.request(call.method, url, **kwargs)
            except httpx.TransportError as exc:
                if retryable_transport_error(exc, call.method) and attempt < self.policy.max_retries:
                    await self.sleep(backoff_delay(self.policy, attempt))
                    attempt += 1
                    continue
                raise unreachable_error(self.cfg.base_url, exc, attempt + 1) from None
            wait = self._retry_wait(response, attempt, call.method)
            if wait is not None:
                await self.sleep(wait)
                attempt += 1
                continue
            return self._parse(call, response)

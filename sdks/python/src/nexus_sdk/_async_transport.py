# The sync twin of this file, _sync_transport.py, is generated from it: edit here, then run
# `python scripts/generate_sync.py` in sdks/python (the test run checks that _sync_transport.py is up to date).
# On the sync side a line with a `# sync: CODE` comment reads CODE (see that script).
"""The asynchronous HTTP transport: :class:`AsyncTransport`."""

from __future__ import annotations

import asyncio  # sync: import threading

# sync: import time
from typing import TypeVar

import httpx

from ._config import ResolvedConfig, RetryPolicy
from ._core import USER_AGENT, Call, backoff_delay, retryable_transport_error, unreachable_error
from ._transport import DEFAULT_TOKEN_SKEW, AsyncSleep, BaseTransport, Clock
from .errors import AuthenticationError
from .models import AgentToken

T = TypeVar("T")


class AsyncTransport(BaseTransport):
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
        self.sleep: AsyncSleep = sleep or asyncio.sleep  # sync: self.sleep: SyncSleep = sleep or time.sleep
        self._lock = asyncio.Lock()  # sync: self._lock = threading.Lock()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def agent_token(self, stale: AgentToken | None = None) -> AgentToken:
        """The cached agent token, logging in (once, for all waiting callers) when needed."""
        async with self._lock:
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
                # An agent token can be revoked or expire early: log in again, once.
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

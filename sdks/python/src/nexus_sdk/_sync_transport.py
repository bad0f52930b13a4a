# Generated from _async_transport.py by scripts/generate_sync.py: do not edit. Edit _async_transport.py, then run
# `python scripts/generate_sync.py` in sdks/python.
"""The synchronous HTTP transport: :class:`SyncTransport`."""

from __future__ import annotations

import threading
import time
from typing import TypeVar

import httpx

from ._config import ResolvedConfig, RetryPolicy
from ._core import USER_AGENT, Call, backoff_delay, retryable_transport_error, unreachable_error
from ._transport import DEFAULT_TOKEN_SKEW, BaseTransport, Clock, SyncSleep
from .errors import AuthenticationError
from .models import AgentToken

T = TypeVar("T")


class SyncTransport(BaseTransport):
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
        """The cached agent token, logging in (once, for all waiting callers) when needed."""
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

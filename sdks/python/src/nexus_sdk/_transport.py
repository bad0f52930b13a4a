"""What the HTTP transports share: authentication to the broker, retry decisions, error mapping.

The I/O itself is in ``_async_transport.py`` (written by hand) and ``_sync_transport.py`` (generated
from it by ``scripts/generate_sync.py``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from . import _calls
from ._config import ResolvedConfig, RetryPolicy
from ._core import (
    Call,
    backoff_delay,
    decode_json,
    error_from_response,
    parse_retry_after,
    retryable_status,
)
from .models import AgentToken

T = TypeVar("T")

Clock = Callable[[], float]
SyncSleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]

#: An agent token is renewed this long before it expires (at most half its lifetime).
DEFAULT_TOKEN_SKEW = 30.0


class BaseTransport:
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

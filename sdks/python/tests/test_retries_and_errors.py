"""Retries (503, 429 with Retry-After, connection errors, timeouts) and error typing, against a small
scripted HTTP server in the test process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nexus_sdk import (
    AsyncNexusClient,
    AttentionRequiredError,
    AuthenticationError,
    BadRequestError,
    BrokerUnavailableError,
    NexusClient,
    NexusError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from nexus_sdk._core import parse_retry_after

CONNECTION = "0b5c7d1e-0000-4000-8000-000000000001"
TOKEN_BODY = {
    "connection_id": CONNECTION,
    "provider_id": "p",
    "provider_name": "tb-header",
    "strategy": {"type": "header", "config": {"header_name": "X-Api-Key"}},
    "credentials": {"api_key": "upstream-secret-value"},
    "expires_at": None,
}


class Scripted:
    """A server answering from a script of (status, headers, body, delay) and recording requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any, float]] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, headers, payload, delay = outer.script.pop(0) if outer.script else (200, {}, {}, 0.0)
                if delay:
                    time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"content-type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=lambda: self.server.serve_forever(poll_interval=0.05), daemon=True).start()

    def then(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> Scripted:
        self.script.append((status, headers or {}, {} if body is None else body, delay))
        return self


def error(code: str, message: str = "The broker says no.") -> dict[str, str]:
    return {"error": code, "message": message, "request_id": "req-from-body"}


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.server.shutdown()
    s.server.server_close()


def client_for(server: Scripted, sleeps: list[float], **options: Any) -> NexusClient:
    options.setdefault("backoff_base", 0.1)
    return NexusClient(server.url, api_key="admin-key-value", sleep=sleeps.append, env={}, **options)


def test_503_is_retried_with_backoff_then_succeeds(server: Scripted) -> None:
    server.then(503, error("service_unavailable")).then(503, error("service_unavailable")).then(200, TOKEN_BODY)
    sleeps: list[float] = []
    credential = client_for(server, sleeps).get_token(CONNECTION)
    assert credential.credentials["api_key"] == "upstream-secret-value"
    assert len(server.requests) == 3 and len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2
    assert server.requests[0]["headers"]["X-API-Key"] == "admin-key-value"


def test_429_honours_retry_after(server: Scripted) -> None:
    server.then(429, error("rate_limited"), {"Retry-After": "7"}).then(200, TOKEN_BODY)
    sleeps: list[float] = []
    client_for(server, sleeps).get_token(CONNECTION)
    assert sleeps == [7.0]


def test_429_with_a_too_long_retry_after_is_raised_at_once(server: Scripted) -> None:
    server.then(429, error("rate_limited"), {"Retry-After": "600", "x-request-id": "req-429"})
    sleeps: list[float] = []
    with pytest.raises(RateLimitedError) as caught:
        client_for(server, sleeps, max_retry_after=60).get_token(CONNECTION)
    assert (caught.value.status, caught.value.retry_after, caught.value.request_id) == (429, 600.0, "req-429")
    assert sleeps == []


def test_retries_are_bounded(server: Scripted) -> None:
    for _ in range(5):
        server.then(502, error("provider_unavailable"), {"x-request-id": "req-502"})
    sleeps: list[float] = []
    with pytest.raises(BrokerUnavailableError) as caught:
        client_for(server, sleeps, max_retries=2).get_token(CONNECTION)
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (502, "provider_unavailable", "req-502")
    assert len(server.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [502, 504])
def test_502_and_504_are_retried_for_a_get(server: Scripted, status: int) -> None:
    server.then(status, error("provider_unavailable")).then(200, TOKEN_BODY)
    sleeps: list[float] = []
    client_for(server, sleeps).get_token(CONNECTION)
    assert [r["method"] for r in server.requests] == ["GET", "GET"] and len(sleeps) == 1


@pytest.mark.parametrize("status", [502, 504])
def test_502_and_504_are_not_retried_for_a_post(server: Scripted, status: int) -> None:
    # The broker may have done the work (a refresh with the provider) before the gateway gave up.
    server.then(status, error("provider_unavailable"), {"x-request-id": "req-gw"}).then(200, TOKEN_BODY)
    sleeps: list[float] = []
    with pytest.raises(BrokerUnavailableError) as caught:
        client_for(server, sleeps).refresh_connection(CONNECTION)
    assert (caught.value.status, caught.value.request_id) == (status, "req-gw")
    assert [r["method"] for r in server.requests] == ["POST"] and sleeps == []


def test_503_and_429_are_still_retried_for_a_post(server: Scripted) -> None:
    server.then(503, error("service_unavailable")).then(429, error("rate_limited"), {"Retry-After": "2"})
    server.then(200, TOKEN_BODY)
    sleeps: list[float] = []
    credential = client_for(server, sleeps).refresh_connection(CONNECTION)
    assert credential.connection_id == CONNECTION
    assert [r["method"] for r in server.requests] == ["POST", "POST", "POST"]
    assert len(sleeps) == 2 and sleeps[1] == 2.0


def test_500_is_not_retried(server: Scripted) -> None:
    server.then(500, error("internal_error")).then(200, TOKEN_BODY)
    sleeps: list[float] = []
    with pytest.raises(ServerError):
        client_for(server, sleeps).get_token(CONNECTION)
    assert len(server.requests) == 1 and sleeps == []


def test_unreachable_broker_is_retried_then_typed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    client = NexusClient(
        f"http://127.0.0.1:{port}", api_key="k", max_retries=3, backoff_base=0.1, sleep=sleeps.append, env={}
    )
    with pytest.raises(BrokerUnavailableError) as caught:
        client.check_connection(CONNECTION)
    assert caught.value.status is None and "could not be reached" in str(caught.value)
    # Exponential: each ceiling doubles, the wait is jittered within [ceiling/2, ceiling].
    assert len(sleeps) == 3
    for n, seconds in enumerate(sleeps):
        assert 0.1 * 2**n / 2 <= seconds <= 0.1 * 2**n


def test_every_call_has_a_timeout_and_only_idempotent_calls_retry_it(server: Scripted) -> None:
    server.then(200, TOKEN_BODY, delay=1.0).then(200, TOKEN_BODY, delay=1.0)
    sleeps: list[float] = []
    client = client_for(server, sleeps, timeout=0.2, max_retries=1)
    with pytest.raises(BrokerUnavailableError, match="ReadTimeout"):
        client.get_token(CONNECTION)
    assert len(server.requests) == 2 and len(sleeps) == 1
    server.requests.clear()
    server.script.clear()
    server.then(200, TOKEN_BODY, delay=1.0)
    with pytest.raises(BrokerUnavailableError):
        client.refresh_connection(CONNECTION)  # a POST: not sent twice after a read timeout
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_request", BadRequestError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (422, "invalid_profile", BadRequestError),
    ],
)
def test_errors_are_typed_by_status(server: Scripted, status: int, code: str, kind: type[NexusError]) -> None:
    server.then(status, error(code), {"x-request-id": "req-1"})
    with pytest.raises(kind) as caught:
        client_for(server, []).get_token(CONNECTION)
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (status, code, "req-1")
    assert "The broker says no." in str(caught.value)


def test_attention_required_names_the_connection(server: Scripted) -> None:
    server.then(409, error("attention_required"), {"x-request-id": "req-409"})
    with pytest.raises(AttentionRequiredError) as caught:
        client_for(server, []).get_token(CONNECTION)
    assert caught.value.connection_id == CONNECTION and caught.value.request_id == "req-409"
    assert "must reconnect" in str(caught.value) and CONNECTION in str(caught.value)


def test_secrets_never_reach_error_text(server: Scripted) -> None:
    user_token = "eyJ.user-token-that-must-stay-private.sig"
    server.then(400, error("invalid_request", "The user token is not valid."))
    with pytest.raises(BadRequestError) as caught:
        client_for(server, []).request_obo_session(user_token, ["tb:read"])
    for text in (str(caught.value), repr(caught.value)):
        assert user_token not in text and "admin-key-value" not in text
    assert json.loads(server.requests[0]["body"])["user_token"] == user_token


def test_credential_repr_hides_secrets(server: Scripted) -> None:
    server.then(200, TOKEN_BODY)
    credential = client_for(server, []).get_token(CONNECTION)
    assert "upstream-secret-value" not in repr(credential) and "upstream-secret-value" not in str(credential)


def test_agent_login_uses_client_credentials_and_is_reused(server: Scripted) -> None:
    server.then(200, {"access_token": "agent-access-token", "token_type": "Bearer", "expires_in": 900, "scope": ""})
    server.then(200, TOKEN_BODY).then(200, TOKEN_BODY)
    client = NexusClient(server.url, client_id="tb-agent", client_secret="agent-secret", env={})
    client.get_token(CONNECTION)
    client.get_token(CONNECTION)
    login, first, second = server.requests
    assert login["path"] == "/oauth/token" and b"grant_type=client_credentials" in login["body"]
    assert first["headers"]["Authorization"] == "Bearer agent-access-token" == second["headers"]["Authorization"]


def test_parse_retry_after_accepts_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=lambda: 1445412480.0) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_async_client_retries_503_and_honours_retry_after(server: Scripted) -> None:
    server.then(503, error("service_unavailable")).then(429, error("rate_limited"), {"Retry-After": "3"})
    server.then(200, TOKEN_BODY)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncNexusClient(server.url, api_key="k", backoff_base=0.1, sleep=sleep, env={}) as client:
        credential = await client.get_token(CONNECTION)
    assert credential.strategy.type == "header"
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.1 and sleeps[1] == 3.0


async def test_async_errors_are_typed(server: Scripted) -> None:
    server.then(409, error("attention_required"))
    async with AsyncNexusClient(server.url, api_key="k", env={}) as client:
        with pytest.raises(AttentionRequiredError) as caught:
            await client.refresh_connection(CONNECTION)
    assert caught.value.connection_id == CONNECTION


async def test_async_502_is_not_retried_for_a_post_but_is_for_a_get(server: Scripted) -> None:
    server.then(502, error("provider_unavailable")).then(200, TOKEN_BODY)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncNexusClient(server.url, api_key="k", backoff_base=0.1, sleep=sleep, env={}) as client:
        with pytest.raises(BrokerUnavailableError):
            await client.refresh_connection(CONNECTION)
        assert [r["method"] for r in server.requests] == ["POST"] and sleeps == []
        server.requests.clear()
        server.script.clear()
        server.then(504, error("gateway_timeout")).then(200, TOKEN_BODY)
        await client.get_token(CONNECTION)
    assert [r["method"] for r in server.requests] == ["GET", "GET"] and len(sleeps) == 1

"""The bridge keeps the credential on the origin of the request (redirects), and replays a request body
after a 401 only when it can: against small local servers (a fake broker and two upstream origins,
127.0.0.1 and localhost)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests

from nexus_sdk import NexusAuth, NexusClient, NexusRequestsAuth
from nexus_sdk.async_client import AsyncNexusClient

CONNECTION = "0b5c7d1e-0000-4000-8000-000000000002"

#: One credential per strategy, with the secrets each must not leak, and the headers it sets.
CREDENTIALS: dict[str, tuple[dict[str, Any], dict[str, str], list[str]]] = {
    "oauth2": ({}, {"access_token": "oauth-access-token-secret", "token_type": "Bearer"}, ["authorization"]),
    "header": ({"header_name": "X-Api-Key"}, {"api_key": "header-api-key-secret"}, ["x-api-key"]),
    "query_param": ({"param_name": "api_key"}, {"api_key": "query-api-key-secret"}, []),
    "basic_auth": ({}, {"username": "basic-user", "password": "basic-password-secret"}, ["authorization"]),
    "hmac_payload": ({"header_name": "X-Signature"}, {"api_secret": "hmac-secret"}, ["x-signature"]),
    "aws_sigv4": (
        {"region": "eu-west-1", "service": "testbed"},
        {"access_key": "AKIDEXAMPLE", "secret_key": "sigv4-secret-key", "session_token": "sigv4-session-token-secret"},
        ["authorization", "x-amz-security-token", "x-amz-date"],
    ),
}


def token_body(strategy: str) -> dict[str, Any]:
    config, credentials, _ = CREDENTIALS[strategy]
    return {
        "connection_id": CONNECTION,
        "provider_id": "p",
        "provider_name": f"tb-{strategy}",
        "strategy": {"type": strategy, "config": config},
        "credentials": credentials,
        "expires_at": None,
    }


class Server:
    """A recording HTTP server; ``answer(handler, body)`` returns (status, headers, payload)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: Any = lambda handler, body: (200, {}, {"ok": True})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a request whose body never comes fails instead of hanging the test

            def log_message(self, *args: Any) -> None:
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self) -> None:
                try:
                    body = self._read_body()
                except TimeoutError:
                    body = b"<timed out>"
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status, headers, payload = outer.answer(self, body)
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

            do_GET = do_POST = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=lambda: self.server.serve_forever(poll_interval=0.05), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server, Server]]:
    """A fake broker, the upstream origin (127.0.0.1) and another origin (localhost)."""
    broker, origin, other = Server(), Server("127.0.0.1"), Server("localhost")
    yield broker, origin, other
    for s in (broker, origin, other):
        s.close()


def redirecting(origin: Server, other: Server) -> None:
    """/away redirects to the other origin, /here to the same origin; both keep the query string."""

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], Any]:
        path, _, query = handler.path.partition("?")
        suffix = f"?{query}" if query else ""
        if path.endswith("/away"):
            return 307, {"location": f"{other.url}/landed{suffix}"}, {}
        if path.endswith("/here"):
            return 307, {"location": f"/landed{suffix}"}, {}
        return 200, {}, {"ok": True}

    origin.answer = answer


def leaked(recorded: dict[str, Any], strategy: str) -> list[str]:
    """What of the strategy's credential reached this request: header names and secret values."""
    _, credentials, names = CREDENTIALS[strategy]
    found = [name for name in names if name in recorded["headers"]]
    if strategy == "hmac_payload" and "x-signature" in recorded["headers"]:
        found.append("x-signature")
    text = recorded["path"] + " " + " ".join(recorded["headers"].values())
    found += [key for key, value in credentials.items() if key != "token_type" and value in text]
    if "api_key=" in recorded["path"]:
        found.append("api_key=")
    return found


def broker_client(broker: Server, strategy: str) -> NexusClient:
    broker.answer = lambda handler, body: (200, {}, token_body(strategy))
    return NexusClient(broker.url, api_key="admin-key-value", env={}, max_retries=0)


def send(lib: str, client: NexusClient, url: str) -> int:
    if lib == "httpx":
        with httpx.Client(auth=NexusAuth(client, CONNECTION), follow_redirects=True, timeout=10) as http:
            return http.post(url, content=b'{"a":1}', headers={"content-type": "application/json"}).status_code
    with requests.Session() as session:
        response = session.post(
            url,
            data=b'{"a":1}',
            headers={"content-type": "application/json"},
            auth=NexusRequestsAuth(client, CONNECTION),
            timeout=10,
        )
        return response.status_code


@pytest.mark.parametrize("lib", ["httpx", "requests"])
@pytest.mark.parametrize("strategy", list(CREDENTIALS))
def test_a_redirect_to_another_origin_does_not_carry_the_credential(
    servers: tuple[Server, Server, Server], lib: str, strategy: str
) -> None:
    broker, origin, other = servers
    redirecting(origin, other)
    with broker_client(broker, strategy) as client:
        assert send(lib, client, f"{origin.url}/{strategy}/away?q=1") == 200
    (first,) = origin.requests
    (landed,) = other.requests
    assert leaked(first, strategy), "the credential must reach the original origin"
    assert landed["path"].startswith("/landed") and "q=1" in landed["path"]
    assert leaked(landed, strategy) == []


@pytest.mark.parametrize("lib", ["httpx", "requests"])
@pytest.mark.parametrize("strategy", ["header", "query_param"])
def test_a_redirect_on_the_same_origin_keeps_the_credential(
    servers: tuple[Server, Server, Server], lib: str, strategy: str
) -> None:
    broker, origin, other = servers
    redirecting(origin, other)
    with broker_client(broker, strategy) as client:
        assert send(lib, client, f"{origin.url}/{strategy}/here") == 200
    first, landed = origin.requests
    assert landed["path"].startswith("/landed")
    assert leaked(first, strategy) and leaked(landed, strategy)
    assert other.requests == []


async def test_async_httpx_redirect_to_another_origin_does_not_carry_the_credential(
    servers: tuple[Server, Server, Server],
) -> None:
    broker, origin, other = servers
    redirecting(origin, other)
    broker.answer = lambda handler, body: (200, {}, token_body("aws_sigv4"))
    async with AsyncNexusClient(broker.url, api_key="admin-key-value", env={}, max_retries=0) as client:
        traced: list[str] = []

        async def trace(name: str, info: dict[str, Any]) -> None:
            traced.append(name)

        async with httpx.AsyncClient(auth=NexusAuth(client, CONNECTION), follow_redirects=True) as http:
            response = await http.get(f"{origin.url}/aws_sigv4/away", extensions={"trace": trace})
    assert response.status_code == 200
    (first,) = origin.requests
    (landed,) = other.requests
    assert leaked(first, "aws_sigv4") and leaked(landed, "aws_sigv4") == []
    # A trace set by the caller still sees every hop.
    assert traced.count("http11.send_request_headers.started") == 2


def refusing_first(origin: Server) -> None:
    """The first request gets 401, the next ones 200 with the body's length."""

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], Any]:
        if len(origin.requests) == 1:
            return 401, {}, {"error": "invalid_credential"}
        return 200, {}, {"ok": True, "length": len(body)}

    origin.answer = answer


def test_requests_replays_a_seekable_stream_after_a_401(servers: tuple[Server, Server, Server]) -> None:
    broker, origin, _ = servers
    refusing_first(origin)
    with broker_client(broker, "header") as client:
        auth = NexusRequestsAuth(client, CONNECTION)
        response = requests.post(f"{origin.url}/upload", data=io.BytesIO(b"hello world"), auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert [r["body"] for r in origin.requests] == [b"hello world", b"hello world"]
    assert [r["headers"]["content-length"] for r in origin.requests] == ["11", "11"]
    assert response.json() == {"ok": True, "length": 11}


def test_requests_returns_the_401_when_a_one_shot_stream_cannot_be_replayed(
    servers: tuple[Server, Server, Server],
) -> None:
    broker, origin, _ = servers
    refusing_first(origin)
    with broker_client(broker, "header") as client:
        auth = NexusRequestsAuth(client, CONNECTION)
        body = (chunk for chunk in [b"hello ", b"world"])
        response = requests.post(f"{origin.url}/upload", data=body, auth=auth, timeout=10)
    assert response.status_code == 401
    assert [r["body"] for r in origin.requests] == [b"hello world"]
    # The refused credential was refreshed (read again: static credentials) for the next request.
    assert [r["path"] for r in broker.requests] == [f"/v1/token/{CONNECTION}", f"/v1/refresh/{CONNECTION}"]

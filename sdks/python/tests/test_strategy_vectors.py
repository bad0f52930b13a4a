"""Both bridges (httpx and requests) against the shared strategy vectors.

The vectors are ``testdata/strategy-vectors.json`` at the repository root: the same file the broker and the
TypeScript and Go SDKs assert, so the implementations of the strategies table cannot drift.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import httpx
import pytest
import requests

from nexus_sdk import Credential, StrategyError, apply_to_httpx_request, apply_to_prepared_request

VECTORS_FILE = Path(__file__).resolve().parents[3] / "testdata" / "strategy-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]

#: Headers the transports add themselves; the vectors do not describe them.
TRANSPORT_HEADERS = frozenset({"host", "content-length"})


def credential_of(vector: dict[str, Any]) -> Credential:
    return Credential.from_dict(
        {
            "connection_id": "c-vectors",
            "provider_id": "p",
            "provider_name": "vectors",
            "strategy": vector["strategy"],
            "credentials": vector["credentials"],
            "expires_at": None,
        }
    )


@contextmanager
def signing_time(vector: dict[str, Any]) -> Iterator[None]:
    """botocore's clock fixed at the vector's ``now`` (aws_sigv4 only)."""
    if "now" not in vector:
        yield
        return
    now = datetime.datetime.fromisoformat(vector["now"].replace("Z", "+00:00")).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
        yield


Sent = tuple[dict[str, str], str, list[tuple[str, str]]]


def via_httpx(vector: dict[str, Any]) -> Sent:
    r = vector["request"]
    request = httpx.Request(r["method"], r["url"], headers=r["headers"], content=r["body"].encode() or None)
    with signing_time(vector):
        apply_to_httpx_request(request, credential_of(vector))
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in TRANSPORT_HEADERS}
    url = request.url
    return headers, str(url.copy_with(query=None)), parse_qsl(url.query.decode(), keep_blank_values=True)


def via_requests(vector: dict[str, Any]) -> Sent:
    r = vector["request"]
    prepared = requests.Request(r["method"], r["url"], headers=r["headers"], data=r["body"].encode() or None).prepare()
    with signing_time(vector):
        apply_to_prepared_request(prepared, credential_of(vector))
    headers = {k.lower(): v for k, v in prepared.headers.items() if k.lower() not in TRANSPORT_HEADERS}
    parts = urlsplit(prepared.url or "")
    return headers, f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qsl(parts.query, keep_blank_values=True)


BRIDGES: dict[str, Callable[[dict[str, Any]], Sent]] = {"httpx": via_httpx, "requests": via_requests}


def test_the_vector_file_covers_every_strategy_type() -> None:
    types = {v["strategy"]["type"] for v in VECTORS}
    assert types == {"oauth2", "header", "headers", "query_param", "basic_auth", "hmac_payload", "aws_sigv4"}


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_strategy_vector(vector: dict[str, Any], bridge: str) -> None:
    expected = vector["expected"]
    send = BRIDGES[bridge]
    if "error" in expected:
        with pytest.raises(StrategyError) as raised:
            send(vector)
        message = str(raised.value)
        for name in expected["error"]["names"]:
            assert name in message
        for value in vector["credentials"].values():
            assert not value or value not in message, "a credential value in the error"
        return
    headers, url, query = send(vector)
    assert headers == expected["headers"]
    assert url == expected["url"]
    # Decoded pairs; the order a client writes them in is not significant.
    assert sorted(query) == sorted((name, value) for name, value in expected["query"])

"""Shared test helpers: the strategy list, request bodies, and one sender per sync HTTP library."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import requests

STRATEGIES = ["oauth2", "header", "headers", "query_param", "basic_auth", "hmac_payload", "aws_sigv4"]
BODY = b'{"order":42,"note":"caf\xc3\xa9 & tea","items":[1,2,3]}'
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()

Sender = Callable[..., tuple[int, Any]]


def httpx_sender(auth: httpx.Auth) -> tuple[Sender, Callable[[], None]]:
    client = httpx.Client(auth=auth, timeout=30)

    def send(
        method: str, url: str, content: bytes | None = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"content-type": "application/json"} if content is not None else None
        response = client.request(method, url, content=content, params=params, headers=headers)
        return response.status_code, response.json()

    return send, client.close


def requests_sender(auth: Any) -> tuple[Sender, Callable[[], None]]:
    session = requests.Session()
    session.auth = auth

    def send(
        method: str, url: str, content: bytes | None = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"content-type": "application/json"} if content is not None else None
        response = session.request(method, url, data=content, params=params, headers=headers, timeout=30)
        return response.status_code, response.json()

    return send, session.close

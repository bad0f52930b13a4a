"""Unit tests without the testbed: the nexus-secret resolver and the strategy table."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import pytest
import requests

from nexus_sdk import Credential, StrategyError, apply_to_httpx_request, apply_to_prepared_request
from nexus_sdk.secrets import find_references, replace_references


def credential(kind: str, config: dict[str, str], creds: dict[str, str]) -> Credential:
    return Credential.from_dict(
        {
            "connection_id": "c1",
            "provider_id": "p",
            "provider_name": "n",
            "strategy": {"type": kind, "config": config},
            "credentials": creds,
            "expires_at": None,
        }
    )


def test_resolver_walks_nested_dicts_lists_and_tuples() -> None:
    config: dict[str, Any] = {
        "a": "nexus-secret:one",
        "b": [{"c": "nexus-secret:two"}, ("nexus-secret:one", 3)],
        "d": {"e": {"f": ["x", "nexus-secret:three"]}},
        "not": ["nexus-secret:", "prefix nexus-secret:one", "nexus-secret:bad name", "NEXUS-SECRET:one"],
        "nexus-secret:key": "keys are not references",
    }
    assert find_references(config) == ["one", "two", "three"]
    resolved = replace_references(config, {"one": "1", "two": "2"})
    assert resolved["a"] == "1" and resolved["b"] == [{"c": "2"}, ("1", 3)]
    assert resolved["d"]["e"]["f"] == ["x", "nexus-secret:three"]
    assert resolved["not"] == config["not"]
    assert config["a"] == "nexus-secret:one"  # the input is not modified


def test_header_basic_and_query_param() -> None:
    request = httpx.Request("GET", "https://api.example/x?api_key=stale&keep=1")
    apply_to_httpx_request(
        request, credential("header", {"header_name": "X-Key", "value_prefix": "Token "}, {"api_key": "k1"})
    )
    assert request.headers["X-Key"] == "Token k1"
    apply_to_httpx_request(request, credential("basic_auth", {}, {"username": "u", "password": "p:w"}))
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()
    apply_to_httpx_request(request, credential("query_param", {"param_name": "api_key"}, {"api_key": "a b&c"}))
    assert request.url.params["api_key"] == "a b&c" and request.url.params["keep"] == "1"
    assert len(request.url.params.get_list("api_key")) == 1


def test_requests_query_param_replaces_a_previous_value() -> None:
    prepared = requests.Request("GET", "https://api.example/x", params={"api_key": "old", "q": "1"}).prepare()
    apply_to_prepared_request(prepared, credential("query_param", {"param_name": "api_key"}, {"api_key": "n+w/"}))
    assert prepared.url == "https://api.example/x?q=1&api_key=n%2Bw%2F"


@pytest.mark.parametrize(("algo", "encoding"), [("sha256", "hex"), ("sha1", "base64")])
def test_hmac_over_the_exact_body(algo: str, encoding: str) -> None:
    body = b'{"a": 1}\n'
    request = httpx.Request("POST", "https://api.example/x", content=body)
    apply_to_httpx_request(
        request,
        credential("hmac_payload", {"header_name": "X-Sig", "algo": algo, "encoding": encoding}, {"api_secret": "s"}),
    )
    digest = hmac.new(b"s", body, getattr(hashlib, algo)).digest()
    expected = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert request.headers["X-Sig"] == expected


def test_sigv4_resigning_drops_a_stale_session_token() -> None:
    request = httpx.Request("POST", "https://api.example/x?b=2&a=1 2", content=b"{}")
    creds = {"access_key": "AKID", "secret_key": "SECRET", "session_token": "TOKEN"}
    apply_to_httpx_request(request, credential("aws_sigv4", {"service": "execute-api", "region": "eu-west-1"}, creds))
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "/eu-west-1/execute-api/aws4_request" in request.headers["Authorization"]
    assert request.headers["X-Amz-Security-Token"] == "TOKEN"
    assert request.url.query == b"b=2&a=1%202"
    apply_to_httpx_request(
        request, credential("aws_sigv4", {"service": "execute-api"}, {"access_key": "AKID2", "secret_key": "S2"})
    )
    assert "X-Amz-Security-Token" not in request.headers
    assert "/us-east-1/execute-api/" in request.headers["Authorization"]


def test_missing_fields_are_strategy_errors_without_values() -> None:
    with pytest.raises(StrategyError, match="api_secret"):
        apply_to_httpx_request(
            httpx.Request("POST", "https://x/"),
            credential("hmac_payload", {"header_name": "X"}, {"other": "hidden-value"}),
        )
    with pytest.raises(StrategyError, match="param_name"):
        apply_to_httpx_request(httpx.Request("GET", "https://x/"), credential("query_param", {}, {"api_key": "v"}))
    with pytest.raises(StrategyError, match="Unknown strategy"):
        apply_to_httpx_request(httpx.Request("GET", "https://x/"), credential("mtls", {}, {}))

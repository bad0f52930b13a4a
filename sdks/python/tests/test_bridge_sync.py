"""The synchronous bridge (httpx.Auth and the requests auth class) against the live testbed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from nexus_sdk import AttentionRequiredError, BrokerUnavailableError, NexusAuth, NexusClient, NexusRequestsAuth

from conftest import FakeClock, Testbed
from helpers import BODY, BODY_SHA256, STRATEGIES, Sender, httpx_sender, requests_sender

LIBS = ["httpx", "requests"]


def make_auth(lib: str, client: NexusClient, connection_id: str | None = None, **options: Any) -> Any:
    if lib == "httpx":
        return NexusAuth(client, connection_id, **options)
    return NexusRequestsAuth(client, connection_id, **options)


def sender(lib: str, auth: Any) -> tuple[Sender, Any]:
    return httpx_sender(auth) if lib == "httpx" else requests_sender(auth)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_applies_every_strategy(testbed: Testbed, agent: NexusClient, lib: str, strategy: str) -> None:
    auth = make_auth(lib, agent, testbed.connection(strategy))
    send, close = sender(lib, auth)
    accepted, rejected = testbed.upstream_counts(strategy)
    try:
        status, body = send("GET", f"{testbed.upstream_url}/{strategy}/v1/items", params={"q": "a b", "page": "2"})
        assert status == 200, body
        assert (status, body["ok"], body["method"]) == (200, True, "GET"), body
        # A body: HMAC and SigV4 sign the exact bytes sent; the upstream recomputes them.
        status, body = send("POST", f"{testbed.upstream_url}/{strategy}/v1/orders", content=BODY)
        assert (status, body["method"], body["body_sha256"]) == (200, "POST", BODY_SHA256), body
    finally:
        close()
    assert testbed.upstream_counts(strategy) == (accepted + 2, rejected)
    # The cached credential never shows its secrets.
    credential = auth.credential
    assert credential is not None and credential.strategy.type == strategy
    shown = repr(credential) + repr(auth)
    secrets = [v for k, v in credential.credentials.items() if k not in ("token_type", "scope")]
    assert secrets
    for value in secrets:
        assert value not in shown


@pytest.mark.parametrize("lib", LIBS)
def test_workspace_and_provider_resolve_the_connection(testbed: Testbed, agent: NexusClient, lib: str) -> None:
    auth = make_auth(lib, agent, workspace_id=testbed.workspace_id, provider_name=testbed.provider("header"))
    send, close = sender(lib, auth)
    try:
        status, body = send("GET", f"{testbed.upstream_url}/header/resolved")
    finally:
        close()
    assert status == 200, body


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_retries_once_after_upstream_401_with_a_forced_refresh(
    testbed: Testbed, agent: NexusClient, lib: str, strategy: str
) -> None:
    # A fresh connection: the broker coalesces forced refreshes that come within 2 s of the last one.
    connection_id = testbed.connect(strategy)
    auth = make_auth(lib, agent, connection_id)
    send, close = sender(lib, auth)
    try:
        status, _ = send("GET", f"{testbed.upstream_url}/{strategy}/warm")
        assert status == 200
        accepted, rejected = testbed.upstream_counts(strategy)
        grants = testbed.refresh_grants()
        testbed.control("POST", "/upstream/reject-next", {"strategy": strategy, "count": 1})
        status, body = send("POST", f"{testbed.upstream_url}/{strategy}/after-401", content=BODY)
        assert status == 200, body
        assert testbed.upstream_counts(strategy) == (accepted + 1, rejected + 1)
        # OAuth: the forced refresh reached the identity provider exactly once.
        assert testbed.refresh_grants() - grants == (1 if strategy == "oauth2" else 0)

        # Exactly one retry: two refusals in a row reach the caller as a 401.
        testbed.control("POST", "/upstream/reject-next", {"strategy": strategy, "count": 2})
        status, body = send("GET", f"{testbed.upstream_url}/{strategy}/twice")
        assert status == 401 and body["error"] == "invalid_credential"
        assert testbed.upstream_counts(strategy) == (accepted + 1, rejected + 3)
    finally:
        close()


@pytest.mark.parametrize("lib", LIBS)
def test_refreshes_ahead_of_expiry_once_for_many_waiting_requests(
    testbed: Testbed, agent: NexusClient, lib: str, clock: FakeClock
) -> None:
    connection_id = testbed.connect("oauth2")
    auth = make_auth(lib, agent, connection_id, clock=clock, refresh_skew=60)
    send, close = sender(lib, auth)
    try:
        assert send("GET", f"{testbed.upstream_url}/oauth2/first")[0] == 200
        first = auth.credential
        assert first is not None and first.expires_at is not None
        before = testbed.refresh_grants()
        # Past expires_at - skew (but before expires_at): the next requests must refresh, once.
        clock.now = first.expires_at.timestamp() - 60 + 1
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda i: send("GET", f"{testbed.upstream_url}/oauth2/burst/{i}"), range(20)))
        assert [status for status, _ in results] == [200] * 20
        assert testbed.refresh_grants() - before == 1
        second = auth.credential
        assert second is not None and second.access_token != first.access_token
        # Cached again: more requests do not refresh.
        assert send("GET", f"{testbed.upstream_url}/oauth2/after")[0] == 200
        assert testbed.refresh_grants() - before == 1
    finally:
        close()


@pytest.mark.parametrize("lib", LIBS)
def test_attention_required_is_a_typed_error_telling_the_user_to_reconnect(
    testbed: Testbed, agent: NexusClient, lib: str
) -> None:
    connection_id = testbed.connect("oauth2")
    auth = make_auth(lib, agent, connection_id)
    send, close = sender(lib, auth)
    try:
        assert send("GET", f"{testbed.upstream_url}/oauth2/before")[0] == 200
        testbed.control("POST", "/idp/revoke", {"connection_id": connection_id})
        with pytest.raises(AttentionRequiredError) as caught:
            send("GET", f"{testbed.upstream_url}/oauth2/after-revoke")
    finally:
        close()
    error = caught.value
    assert error.connection_id == connection_id
    assert (error.status, error.code) == (409, "attention_required")
    assert error.request_id
    assert "must reconnect" in str(error)
    assert agent.check_connection(connection_id).status == "attention_required"


@pytest.mark.parametrize("lib", LIBS)
def test_backs_off_while_the_broker_is_down_then_succeeds(testbed: Testbed, lib: str) -> None:
    sleeps: list[float] = []
    starts = testbed.stats()["broker"]["starts"]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            testbed.control("POST", "/broker/start")

    # A new client: it must log in and fetch the credential while the broker is down.
    client = testbed.agent_client(max_retries=6, backoff_base=0.2, backoff_max=5, sleep=sleep)
    auth = make_auth(lib, client, testbed.connection("header"))
    send, close = sender(lib, auth)
    testbed.control("POST", "/broker/stop")
    try:
        status, body = send("GET", f"{testbed.upstream_url}/header/after-outage")
    finally:
        testbed.control("POST", "/broker/start")
        close()
        client.close()
    assert status == 200, body
    assert testbed.stats()["broker"]["starts"] == starts + 1
    # Exponential backoff with jitter: the n-th wait lies in [d/2, d] with d = 0.2 * 2**n.
    assert len(sleeps) == 2
    for n, seconds in enumerate(sleeps):
        assert 0.2 * 2**n / 2 <= seconds <= 0.2 * 2**n


@pytest.mark.parametrize("lib", LIBS)
def test_keeps_the_cached_credential_when_a_refresh_ahead_of_expiry_finds_the_broker_down(
    testbed: Testbed, lib: str, clock: FakeClock
) -> None:
    connection_id = testbed.connect("oauth2")
    client = testbed.agent_client(max_retries=1, backoff_base=0.01, sleep=lambda seconds: None)
    auth = make_auth(lib, client, connection_id, clock=clock, refresh_skew=60)
    send, close = sender(lib, auth)
    try:
        assert send("GET", f"{testbed.upstream_url}/oauth2/before")[0] == 200
        first = auth.credential
        assert first is not None and first.expires_at is not None
        grants = testbed.refresh_grants()
        testbed.control("POST", "/broker/stop")
        # Due for a refresh (within the skew) but not expired: the cached credential is still used.
        clock.now = first.expires_at.timestamp() - 30
        status, body = send("GET", f"{testbed.upstream_url}/oauth2/broker-down")
        assert status == 200, body
        assert auth.credential is first
        # Expired: the broker's unavailability reaches the caller.
        clock.now = first.expires_at.timestamp() + 1
        with pytest.raises(BrokerUnavailableError):
            send("GET", f"{testbed.upstream_url}/oauth2/expired")
        # The broker is back: the next request refreshes.
        testbed.control("POST", "/broker/start")
        clock.now = first.expires_at.timestamp() - 30
        assert send("GET", f"{testbed.upstream_url}/oauth2/broker-back")[0] == 200
        second = auth.credential
        assert second is not None and second.access_token != first.access_token
        assert testbed.refresh_grants() - grants == 1
    finally:
        testbed.control("POST", "/broker/start")
        close()
        client.close()

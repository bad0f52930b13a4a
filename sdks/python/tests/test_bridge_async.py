"""The asynchronous bridge (NexusAuth with AsyncNexusClient and httpx.AsyncClient) against the testbed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nexus_sdk import AsyncNexusClient, AttentionRequiredError, BrokerUnavailableError, NexusAuth

from conftest import FakeClock, Testbed
from helpers import BODY, BODY_SHA256, STRATEGIES


def async_agent(testbed: Testbed, **options: Any) -> AsyncNexusClient:
    return AsyncNexusClient(
        testbed.broker_url,
        client_id=testbed.agent["client_id"],
        client_secret=testbed.agent["client_secret"],
        **options,
    )


@pytest.fixture
async def aagent(testbed: Testbed) -> AsyncIterator[AsyncNexusClient]:
    async with async_agent(testbed) as client:
        yield client


async def control(testbed: Testbed, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The control API without blocking the event loop."""
    return await asyncio.to_thread(testbed.control, method, path, body)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_applies_every_strategy(testbed: Testbed, aagent: AsyncNexusClient, strategy: str) -> None:
    auth = NexusAuth(aagent, testbed.connection(strategy))
    accepted, rejected = testbed.upstream_counts(strategy)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        first = await http.get(f"{testbed.upstream_url}/{strategy}/v1/items", params={"q": "a b", "page": "2"})
        assert first.status_code == 200, first.json()
        second = await http.post(
            f"{testbed.upstream_url}/{strategy}/v1/orders", content=BODY, headers={"content-type": "application/json"}
        )
        assert second.status_code == 200, second.json()
        assert second.json()["body_sha256"] == BODY_SHA256
    assert testbed.upstream_counts(strategy) == (accepted + 2, rejected)


async def test_workspace_and_provider_resolve_the_connection(testbed: Testbed, aagent: AsyncNexusClient) -> None:
    auth = NexusAuth(aagent, workspace_id=testbed.workspace_id, provider_name=testbed.provider("basic_auth"))
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        response = await http.get(f"{testbed.upstream_url}/basic_auth/resolved")
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_retries_once_after_upstream_401_with_a_forced_refresh(
    testbed: Testbed, aagent: AsyncNexusClient, strategy: str
) -> None:
    connection_id = await asyncio.to_thread(testbed.connect, strategy)
    auth = NexusAuth(aagent, connection_id)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        assert (await http.get(f"{testbed.upstream_url}/{strategy}/warm")).status_code == 200
        accepted, rejected = testbed.upstream_counts(strategy)
        grants = testbed.refresh_grants()
        await control(testbed, "POST", "/upstream/reject-next", {"strategy": strategy, "count": 1})
        response = await http.post(f"{testbed.upstream_url}/{strategy}/after-401", content=BODY)
        assert response.status_code == 200, response.json()
        assert testbed.upstream_counts(strategy) == (accepted + 1, rejected + 1)
        assert testbed.refresh_grants() - grants == (1 if strategy == "oauth2" else 0)

        await control(testbed, "POST", "/upstream/reject-next", {"strategy": strategy, "count": 2})
        response = await http.get(f"{testbed.upstream_url}/{strategy}/twice")
        assert response.status_code == 401
        assert testbed.upstream_counts(strategy) == (accepted + 1, rejected + 3)


async def test_refreshes_ahead_of_expiry_once_for_many_waiting_requests(
    testbed: Testbed, aagent: AsyncNexusClient, clock: FakeClock
) -> None:
    connection_id = await asyncio.to_thread(testbed.connect, "oauth2")
    auth = NexusAuth(aagent, connection_id, clock=clock, refresh_skew=60)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        assert (await http.get(f"{testbed.upstream_url}/oauth2/first")).status_code == 200
        first = auth.credential
        assert first is not None and first.expires_at is not None
        before = testbed.refresh_grants()
        clock.now = first.expires_at.timestamp() - 60 + 1
        responses = await asyncio.gather(*(http.get(f"{testbed.upstream_url}/oauth2/burst/{i}") for i in range(20)))
        assert [r.status_code for r in responses] == [200] * 20
        assert testbed.refresh_grants() - before == 1
        second = auth.credential
        assert second is not None and second.access_token != first.access_token
        assert (await http.get(f"{testbed.upstream_url}/oauth2/after")).status_code == 200
        assert testbed.refresh_grants() - before == 1


async def test_attention_required_is_a_typed_error_telling_the_user_to_reconnect(
    testbed: Testbed, aagent: AsyncNexusClient
) -> None:
    connection_id = await asyncio.to_thread(testbed.connect, "oauth2")
    auth = NexusAuth(aagent, connection_id)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        assert (await http.get(f"{testbed.upstream_url}/oauth2/before")).status_code == 200
        await control(testbed, "POST", "/idp/revoke", {"connection_id": connection_id})
        with pytest.raises(AttentionRequiredError) as caught:
            await http.get(f"{testbed.upstream_url}/oauth2/after-revoke")
    error = caught.value
    assert error.connection_id == connection_id
    assert (error.status, error.code) == (409, "attention_required")
    assert "must reconnect" in str(error)
    assert (await aagent.check_connection(connection_id)).status == "attention_required"


async def test_backs_off_while_the_broker_is_down_then_succeeds(testbed: Testbed) -> None:
    sleeps: list[float] = []
    starts = testbed.stats()["broker"]["starts"]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            await control(testbed, "POST", "/broker/start")

    client = async_agent(testbed, max_retries=6, backoff_base=0.2, backoff_max=5, sleep=sleep)
    auth = NexusAuth(client, testbed.connection("hmac_payload"))
    await control(testbed, "POST", "/broker/stop")
    try:
        async with httpx.AsyncClient(auth=auth, timeout=30) as http:
            response = await http.post(f"{testbed.upstream_url}/hmac_payload/after-outage", content=BODY)
    finally:
        await control(testbed, "POST", "/broker/start")
        await client.aclose()
    assert response.status_code == 200, response.json()
    assert testbed.stats()["broker"]["starts"] == starts + 1
    assert len(sleeps) == 2
    for n, seconds in enumerate(sleeps):
        assert 0.2 * 2**n / 2 <= seconds <= 0.2 * 2**n


async def test_a_sync_client_in_an_async_flow_is_a_clear_error(testbed: Testbed, agent: Any) -> None:
    auth = NexusAuth(agent, testbed.connection("header"))
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        with pytest.raises(TypeError, match="AsyncNexusClient"):
            await http.get(f"{testbed.upstream_url}/header/x")


async def test_keeps_the_cached_credential_when_a_refresh_ahead_of_expiry_finds_the_broker_down(
    testbed: Testbed, clock: FakeClock
) -> None:
    connection_id = await asyncio.to_thread(testbed.connect, "oauth2")

    async def no_sleep(seconds: float) -> None:
        pass

    client = async_agent(testbed, max_retries=1, backoff_base=0.01, sleep=no_sleep)
    auth = NexusAuth(client, connection_id, clock=clock, refresh_skew=60)
    try:
        async with httpx.AsyncClient(auth=auth, timeout=30) as http:
            assert (await http.get(f"{testbed.upstream_url}/oauth2/before")).status_code == 200
            first = auth.credential
            assert first is not None and first.expires_at is not None
            grants = testbed.refresh_grants()
            await control(testbed, "POST", "/broker/stop")
            clock.now = first.expires_at.timestamp() - 30
            response = await http.get(f"{testbed.upstream_url}/oauth2/broker-down")
            assert response.status_code == 200, response.json()
            assert auth.credential is first
            clock.now = first.expires_at.timestamp() + 1
            with pytest.raises(BrokerUnavailableError):
                await http.get(f"{testbed.upstream_url}/oauth2/expired")
            await control(testbed, "POST", "/broker/start")
            clock.now = first.expires_at.timestamp() - 30
            assert (await http.get(f"{testbed.upstream_url}/oauth2/broker-back")).status_code == 200
            second = auth.credential
            assert second is not None and second.access_token != first.access_token
            assert testbed.refresh_grants() - grants == 1
    finally:
        await control(testbed, "POST", "/broker/start")
        await client.aclose()

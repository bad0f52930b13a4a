"""maintain_websocket against the testbed's WebSocket server, which checks the credential at the handshake
(oauth2 through the provider's userinfo endpoint) and while the connection lasts, with the project's own
broker and a real OpenID provider behind the SDK (issue #17)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nexus_sdk import (
    AttentionRequiredError,
    BridgeMetrics,
    MessageTooLargeError,
    NotConnectedError,
    PermanentConnectionError,
    ReconnectPolicy,
)
from nexus_sdk._held import DisconnectReason

from conftest import Testbed
from ws_helpers import FAST, Recorder, async_agent, control, eventually, label, maintained, ws_endpoint, ws_stats


@pytest.mark.parametrize("strategy", ["oauth2", "header", "query_param", "basic_auth", "aws_sigv4"])
async def test_every_handshake_strategy(testbed: Testbed, strategy: str) -> None:
    lbl = label(strategy)
    rec = Recorder()
    async with maintained(testbed, testbed.connection(strategy), ws_endpoint(testbed, strategy, lbl), rec) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await rec.echo(f"hello {strategy}")
        assert isinstance(await loop.cancel(), asyncio.CancelledError)
    s = await ws_stats(testbed, lbl)
    assert (s["opened"], s["credentials"], [h["status"] for h in s["handshakes"]]) == (1, 1, [101])


async def test_the_server_checks_the_credential(testbed: Testbed) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ws_endpoint(testbed, "oauth2", label("check")), additional_headers={"Authorization": "Bearer not-a-token"}
        ):
            pass
    assert refused.value.response.status_code == 401


async def test_hmac_payload_has_no_handshake_form(testbed: Testbed) -> None:
    lbl = label("hmac")
    async with maintained(
        testbed, testbed.connection("hmac_payload"), ws_endpoint(testbed, "hmac_payload", lbl), Recorder()
    ) as loop:
        error = await loop.wait()
    assert isinstance(error, PermanentConnectionError), error
    assert error.code == "strategy_not_applicable"
    assert error.connection_id == testbed.connection("hmac_payload")
    assert lbl not in (await asyncio.to_thread(testbed.stats))["ws"]


async def test_an_endpoint_must_be_a_websocket_url(testbed: Testbed) -> None:
    async with maintained(
        testbed, testbed.connection("header"), f"{testbed.upstream_url}/header/x", Recorder()
    ) as loop:
        error = await loop.wait(2)
    assert isinstance(error, PermanentConnectionError) and error.reason == "invalid endpoint"


class CountingMetrics(BridgeMetrics):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.status: list[bool] = []

    def inc_connections(self, transport: str) -> None:
        self.events.append(f"connection {transport}")

    def inc_disconnects(self, transport: str, reason: DisconnectReason) -> None:
        self.events.append(f"disconnect {transport} {reason}")

    def inc_token_refreshes(self, transport: str, result: Literal["ok", "error"]) -> None:
        self.events.append(f"refresh {result}")

    def set_connection_status(self, transport: str, connection_id: str, up: bool) -> None:
        self.status.append(up)


async def test_drop_reconnects_after_a_backoff(testbed: Testbed, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nexus_sdk.websocket")
    lbl = label("drop")
    cid = testbed.connection("header")
    rec = Recorder()
    metrics = CountingMetrics()
    # A first wait of 0.3–0.6 s: longer than reading the credential again and dialling take.
    retry = ReconnectPolicy(min_backoff=0.6, max_backoff=1.0)
    async with maintained(testbed, cid, ws_endpoint(testbed, "header", lbl), rec, retry=retry, metrics=metrics) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        assert metrics.status == [True]
        assert (await control(testbed, "POST", "/ws/drop", {"label": lbl}))["dropped"] == 1
        await eventually("a second connection", 20, lambda: rec.welcomes() == 2)
        await rec.echo("after the drop")
        assert (rec.connects, len(rec.disconnects)) == (2, 1)
        assert isinstance(rec.last_disconnect(), ConnectionClosed)
        s = await ws_stats(testbed, lbl)
        assert (s["opened"], s["closed"].get("1006"), len(s["handshakes"])) == (2, 1, 2)
        # The second handshake waited for the backoff (at least half of min_backoff).
        gap = s["handshakes"][1]["at"] - s["handshakes"][0]["at"]
        assert gap >= retry.min_backoff * 1000 / 2, f"reconnected after {gap} ms, before any backoff"
        assert metrics.events == ["connection websocket", "disconnect websocket dropped", "connection websocket"]
        await loop.cancel()
    assert metrics.status == [True, False, True, False]
    records = [r for r in caplog.records if r.name == "nexus_sdk.websocket"]
    messages = [r.getMessage() for r in records]
    assert "connected" in messages and any(m.startswith("reconnecting after") for m in messages), messages
    assert all(getattr(r, "connection_id", None) == cid for r in records)
    async with async_agent(testbed) as agent:
        key = (await agent.get_token(cid)).credentials["api_key"]
    assert key not in caplog.text, "the logs contain the credential"


async def test_failed_attempts_back_off_exponentially(testbed: Testbed) -> None:
    lbl = label("backoff")
    rec = Recorder()
    async with maintained(
        testbed, testbed.connection("basic_auth"), ws_endpoint(testbed, "basic_auth", lbl), rec, retry=FAST
    ):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await control(testbed, "POST", "/ws/refuse-next", {"label": lbl, "count": 3, "status": 503})
        await control(testbed, "POST", "/ws/drop", {"label": lbl})
        await eventually("the connection after three refusals", 20, lambda: rec.welcomes() == 2)
        h = (await ws_stats(testbed, lbl))["handshakes"]
        assert [x["status"] for x in h] == [101, 503, 503, 503, 101]
        # Attempt n waits within [min·2ⁿ/2, min·2ⁿ]; the first wait follows the drop.
        for n in range(1, 4):
            low = FAST.min_backoff * 1000 * 2**n / 2
            gap = h[n + 1]["at"] - h[n]["at"]
            assert gap >= low - 5, f"wait {n} was {gap} ms, below {low} ms: no exponential backoff"


async def test_a_permanent_close_code_stops_the_loop(testbed: Testbed) -> None:
    lbl = label("policy")
    rec = Recorder()
    cid = testbed.connection("header")
    async with maintained(testbed, cid, ws_endpoint(testbed, "header", lbl), rec, retry=FAST) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await control(testbed, "POST", "/ws/drop", {"label": lbl, "code": 1008, "reason": "policy"})
        error = await loop.wait()
    assert isinstance(error, PermanentConnectionError), error
    assert (error.close_code, error.connection_id) == (1008, cid)
    assert isinstance(error.__cause__, ConnectionClosed)
    assert len(rec.disconnects) == 1
    await asyncio.sleep(2 * FAST.max_backoff)
    s = await ws_stats(testbed, lbl)
    assert (s["opened"], len(s["handshakes"])) == (1, 1), "connected again after a permanent close code"


async def test_a_handshake_answered_404_stops_the_loop(testbed: Testbed) -> None:
    lbl = label("gone")
    await control(testbed, "POST", "/ws/refuse-next", {"label": lbl, "count": 1, "status": 404})
    rec = Recorder()
    async with maintained(
        testbed, testbed.connection("header"), ws_endpoint(testbed, "header", lbl), rec, retry=FAST
    ) as loop:
        error = await loop.wait()
    assert isinstance(error, PermanentConnectionError) and error.reason == "handshake answered 404", error
    assert rec.connects == 0
    await asyncio.sleep(2 * FAST.max_backoff)
    assert len((await ws_stats(testbed, lbl))["handshakes"]) == 1


async def test_grant_revoked_at_the_provider_stops_with_attention_required(testbed: Testbed) -> None:
    cid = await asyncio.to_thread(testbed.connect, "oauth2")
    lbl = label("idp-revoke")
    rec = Recorder()
    async with maintained(testbed, cid, ws_endpoint(testbed, "oauth2", lbl), rec, retry=FAST) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await control(testbed, "POST", "/idp/revoke", {"connection_id": cid})
        error = await loop.wait(20)
    assert isinstance(error, PermanentConnectionError), error
    assert (error.code, error.connection_id) == ("attention_required", cid)
    assert isinstance(error.__cause__, AttentionRequiredError)
    s = await ws_stats(testbed, lbl)
    assert (s["opened"], s["unauthorized"]) == (1, 1)


async def test_static_connection_revoked_at_the_broker_is_not_reconnected(testbed: Testbed) -> None:
    """An API key stays valid upstream after the broker revoked its connection: only reading the
    credential again before reconnecting (not the cached one) stops the loop."""
    cid = await asyncio.to_thread(testbed.connect, "header")
    lbl = label("broker-revoke")
    rec = Recorder()
    async with async_agent(testbed) as agent:
        async with maintained(testbed, cid, ws_endpoint(testbed, "header", lbl), rec, agent, retry=FAST) as loop:
            await eventually("welcome", 20, lambda: rec.welcomes() == 1)
            await agent.revoke_connection(cid, reason="test")
            await control(testbed, "POST", "/ws/drop", {"label": lbl})
            error = await loop.wait(20)
    assert isinstance(error, PermanentConnectionError), error
    assert error.code in ("connection_not_active", "not_found", "connection_not_found"), error.code
    assert (await ws_stats(testbed, lbl))["opened"] == 1, "connected again with a revoked connection"


async def test_message_size_limit(testbed: Testbed) -> None:
    lbl = label("size")
    rec = Recorder()
    async with maintained(
        testbed,
        testbed.connection("header"),
        ws_endpoint(testbed, "header", lbl),
        rec,
        max_message_size=1024,
        retry=FAST,
    ):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        # Outgoing: refused before anything is written; the connection stays.
        with pytest.raises(MessageTooLargeError):
            await rec.send(bytes(1025))
        with pytest.raises(MessageTooLargeError):
            await rec.send("é" * 513)  # 1026 bytes in UTF-8
        await rec.echo("x" * 1024)
        assert (await ws_stats(testbed, lbl))["messages"] == 1
        # Incoming: the connection is closed with 1009 (message too big), then opened again.
        await rec.send('{"type":"blob","bytes":2048}')
        await eventually("a second connection", 20, lambda: rec.welcomes() == 2)
        assert isinstance(rec.last_disconnect(), MessageTooLargeError), rec.last_disconnect()
        assert not any(isinstance(m, bytes) for m in rec.messages), "the oversized message was delivered"
        s = await ws_stats(testbed, lbl)
        assert (s["closed"].get("1009"), s["opened"]) == (1, 2)
        await rec.send('{"type":"blob","bytes":1000}')
        await eventually("a binary message", 10, lambda: any(isinstance(m, bytes) for m in rec.messages))


async def test_pings_keep_the_connection_and_a_silent_server_is_replaced(testbed: Testbed) -> None:
    lbl = label("ping")
    rec = Recorder()
    async with maintained(
        testbed,
        testbed.connection("header"),
        ws_endpoint(testbed, "header", lbl),
        rec,
        ping_interval=0.2,
        write_timeout=0.4,
        retry=FAST,
    ):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)

        async def pinged() -> bool:
            return int((await ws_stats(testbed, lbl))["pings"]) >= 3

        await eventually("three pings", 10, pinged)
        await asyncio.sleep(1)
        assert rec.connects == 1, "an idle connection with pongs was dropped"
        assert (await control(testbed, "POST", "/ws/mute", {"label": lbl}))["muted"] == 1
        await eventually("a new connection after the pongs stopped", 10, lambda: rec.welcomes() == 2)
        assert "No pong" in str(rec.last_disconnect())


async def test_cancellation_closes_with_1000(testbed: Testbed) -> None:
    lbl = label("cancel")
    rec = Recorder()
    async with maintained(testbed, testbed.connection("header"), ws_endpoint(testbed, "header", lbl), rec) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        start = time.monotonic()
        assert isinstance(await loop.cancel(), asyncio.CancelledError)
        assert time.monotonic() - start < 3
    assert isinstance(rec.last_disconnect(), asyncio.CancelledError)
    with pytest.raises(NotConnectedError):
        await rec.send("late")

    async def closed_cleanly() -> bool:
        s = await ws_stats(testbed, lbl)
        return bool(s["closed"].get("1000") == 1 and s["open"] == 0)

    await eventually("the server saw the close", 5, closed_cleanly)


async def test_cancellation_while_waiting_to_reconnect(testbed: Testbed) -> None:
    lbl = label("cancel-wait")
    rec = Recorder()
    async with maintained(
        testbed,
        testbed.connection("header"),
        ws_endpoint(testbed, "header", lbl),
        rec,
        retry=ReconnectPolicy(min_backoff=60, max_backoff=60),
    ) as loop:
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await control(testbed, "POST", "/ws/drop", {"label": lbl})
        await eventually("the drop", 5, lambda: len(rec.disconnects) == 1)
        assert isinstance(await loop.cancel(2), asyncio.CancelledError)

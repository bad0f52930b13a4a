"""maintain_websocket when the credential expires or is refused: refused by the server (close 3000,
handshake 401), or refreshed ahead of expiry in band or by reconnecting (issue #17). Tokens are made
short-lived by the testbed (``/connect`` with ``token_ttl``), and its servers enforce the expiry."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Literal

from nexus_sdk import BridgeMetrics, Credential, CredentialRefreshedError, CredentialRefusedError, ReconnectPolicy
from nexus_sdk._held import DisconnectReason

from conftest import Testbed
from ws_helpers import FAST, Recorder, async_agent, control, eventually, label, maintained, ws_endpoint, ws_stats


class Counts(BridgeMetrics):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _bump(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def inc_disconnects(self, transport: str, reason: DisconnectReason) -> None:
        self._bump(f"disconnect:{reason}")

    def inc_token_refreshes(self, transport: str, result: Literal["ok", "error"]) -> None:
        self._bump(f"refresh:{result}")

    def get(self, key: str) -> int:
        return self.counts.get(key, 0)


async def refresh_grants(testbed: Testbed) -> int:
    return await asyncio.to_thread(testbed.refresh_grants)


async def connect_short_lived(testbed: Testbed, seconds: int) -> tuple[str, float]:
    """A new oauth2 connection whose tokens live ``seconds``, and its first token's expiry (epoch s)."""
    body = {"strategy": "oauth2", "workspace_id": f"ws-{uuid.uuid4().hex[:12]}", "token_ttl": seconds}
    cid = str((await control(testbed, "POST", "/connect", body))["connection_id"])
    async with async_agent(testbed) as agent:
        expires = (await agent.get_token(cid)).expires_at_epoch()
    assert expires is not None and expires - time.time() <= seconds + 1, "the token is not short-lived"
    return cid, expires


async def test_close_3000_refreshes_once_and_reconnects_at_once(testbed: Testbed) -> None:
    """The server refuses a token it was told has expired (close 3000): the bridge has the broker
    refresh it at the provider and connects again at once with the new one."""
    cid = await asyncio.to_thread(testbed.connect, "oauth2")
    lbl = label("expired")
    rec = Recorder()
    metrics = Counts()
    policy = ReconnectPolicy(min_backoff=2, max_backoff=4)
    async with maintained(testbed, cid, ws_endpoint(testbed, "oauth2", lbl), rec, retry=policy, metrics=metrics):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        before = await refresh_grants(testbed)
        start = time.monotonic()
        assert (await control(testbed, "POST", "/idp/expire", {"connection_id": cid}))["ended"] == 1
        await eventually("a connection with the refreshed token", 20, lambda: rec.welcomes() == 2)
        # At once: no backoff (min_backoff is 2 s here) for a refused credential that was replaced.
        assert time.monotonic() - start < 1.8
        s = await ws_stats(testbed, lbl)
        assert (s["unauthorized"], s["opened"], s["credentials"], s["closed"].get("3000")) == (1, 2, 2, 1)
        assert await refresh_grants(testbed) == before + 1
        last = rec.last_disconnect()
        assert isinstance(last, CredentialRefusedError) and last.close_code == 3000, last
        assert (metrics.get("disconnect:unauthorized"), metrics.get("refresh:ok")) == (1, 1)
        await rec.echo("with the new token")


async def test_a_handshake_answered_401_refreshes_once(testbed: Testbed) -> None:
    cid = await asyncio.to_thread(testbed.connect, "oauth2")
    lbl = label("hs401")
    rec = Recorder()
    async with maintained(testbed, cid, ws_endpoint(testbed, "oauth2", lbl), rec, retry=FAST):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        before = await refresh_grants(testbed)
        await control(testbed, "POST", "/ws/refuse-next", {"label": lbl, "count": 1, "status": 401})
        await control(testbed, "POST", "/ws/drop", {"label": lbl})
        await eventually("a second connection", 20, lambda: rec.welcomes() == 2)
        s = await ws_stats(testbed, lbl)
        assert [h["status"] for h in s["handshakes"]] == [101, 401, 101]
        assert s["credentials"] == 2, "the connection after the 401 used a new credential"
        assert await refresh_grants(testbed) == before + 1


async def test_refresh_in_band_outlives_the_first_token(testbed: Testbed) -> None:
    """A short-lived token is refreshed before it expires and handed to the server in band: the
    connection is never closed, and outlives the token it was opened with."""
    cid, expires = await connect_short_lived(testbed, 12)
    lbl = label("inband")
    rec = Recorder()
    metrics = Counts()
    built: list[Credential] = []

    async def reauth(credential: Credential) -> str:
        built.append(credential)
        return json.dumps({"type": "reauth", "headers": {"Authorization": f"Bearer {credential.access_token}"}})

    async with maintained(
        testbed,
        cid,
        ws_endpoint(testbed, "oauth2", lbl),
        rec,
        refresh_buffer=3,
        retry=FAST,
        metrics=metrics,
        reauth_message=reauth,
    ):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)

        async def reauthenticated() -> bool:
            return int((await ws_stats(testbed, lbl))["reauth_ok"]) >= 1

        await eventually("an in-band re-authentication", 20, reauthenticated)
        assert time.time() < expires, "re-authenticated only after the token expired"
        await asyncio.sleep(expires + 1 - time.time())
        await rec.echo("after the first token expired")
        s = await ws_stats(testbed, lbl)
        assert (s["opened"], s["open"], s["unauthorized"], s["reauth_refused"]) == (1, 1, 0, 0)
        assert s["credentials"] >= 2
        assert rec.disconnects == []
        assert '{"type":"reauth_ok"}' in rec.messages
        assert built and metrics.get("refresh:ok") >= 1


async def test_refresh_by_reconnecting_before_expiry(testbed: Testbed) -> None:
    """Without an in-band re-auth, the connection is closed cleanly and opened again with the
    refreshed token before the old one expires: the server never has to refuse it."""
    cid, expires = await connect_short_lived(testbed, 12)
    lbl = label("reconnect")
    rec = Recorder()
    metrics = Counts()
    async with maintained(
        testbed, cid, ws_endpoint(testbed, "oauth2", lbl), rec, refresh_buffer=3, retry=FAST, metrics=metrics
    ):
        await eventually("a second connection", 20, lambda: rec.welcomes() == 2)
        assert time.time() < expires, "reconnected only after the token expired"
        await asyncio.sleep(expires + 1 - time.time())
        await rec.echo("after the first token expired")
        s = await ws_stats(testbed, lbl)
        assert (s["opened"], s["closed"].get("1000"), s["unauthorized"], s["credentials"]) == (2, 1, 0, 2)
        assert isinstance(rec.last_disconnect(), CredentialRefreshedError), rec.last_disconnect()
        assert metrics.get("disconnect:refresh") == 1


async def test_reconnect_on_refresh_false_keeps_the_connection(testbed: Testbed) -> None:
    """reconnect_on_refresh=False keeps the connection (servers that check only at the handshake): the
    testbed's server checks expiry on open connections too, so it ends this one with 3000, and the
    bridge reconnects at once with the credential it already refreshed."""
    cid, _ = await connect_short_lived(testbed, 12)
    lbl = label("keep")
    rec = Recorder()
    metrics = Counts()
    async with maintained(
        testbed,
        cid,
        ws_endpoint(testbed, "oauth2", lbl),
        rec,
        refresh_buffer=3,
        retry=FAST,
        metrics=metrics,
        reconnect_on_refresh=False,
    ):
        await eventually("welcome", 20, lambda: rec.welcomes() == 1)
        await eventually("a refresh", 20, lambda: metrics.get("refresh:ok") >= 1)
        await asyncio.sleep(0.3)
        assert rec.disconnects == [], "the connection was closed after the refresh"
        await eventually("the server ends the expired session", 20, lambda: rec.welcomes() == 2)
        assert isinstance(rec.disconnects[0], CredentialRefusedError)
        assert (await ws_stats(testbed, lbl))["credentials"] == 2

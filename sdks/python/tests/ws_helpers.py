"""What the maintain_websocket suites share: a recording handler, a running loop, per-label counters of
the testbed's WebSocket server, and polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from nexus_sdk import AsyncNexusClient, ReconnectPolicy
from nexus_sdk.websocket import SendFunction, maintain_websocket

from conftest import Testbed

FAST = ReconnectPolicy(min_backoff=0.1, max_backoff=1.0, reset_after=60.0)


def label(name: str) -> str:
    """A name of the test's own for the server's counters."""
    return f"py-{name}-{uuid.uuid4().hex[:8]}"


def ws_endpoint(testbed: Testbed, strategy: str, lbl: str) -> str:
    return f"{testbed.info['ws_url']}/{strategy}/{lbl}"


async def control(testbed: Testbed, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The control API without blocking the event loop."""
    return await asyncio.to_thread(testbed.control, method, path, body)


async def ws_stats(testbed: Testbed, lbl: str) -> dict[str, Any]:
    stats = await asyncio.to_thread(testbed.stats)
    found = stats["ws"].get(lbl)
    assert found is not None, f"the server saw nothing of {lbl}"
    return dict(found)


async def eventually(what: str, seconds: float, cond: Callable[[], bool | Awaitable[bool]]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)


class Recorder:
    """A handler that keeps what it was told (plain functions: the bridge accepts them too)."""

    def __init__(self) -> None:
        self.connects = 0
        self.disconnects: list[BaseException] = []
        self.messages: list[str | bytes] = []
        self._send: SendFunction | None = None

    def on_connect(self, send: SendFunction) -> None:
        self.connects += 1
        self._send = send

    async def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)

    def on_disconnect(self, error: BaseException) -> None:
        self.disconnects.append(error)

    async def send(self, message: str | bytes) -> None:
        assert self._send is not None, "never connected"
        await self._send(message)

    def welcomes(self) -> int:
        return sum(1 for m in self.messages if isinstance(m, str) and m.startswith('{"type":"welcome"'))

    def last_disconnect(self) -> BaseException | None:
        return self.disconnects[-1] if self.disconnects else None

    async def echo(self, text: str) -> None:
        await self.send(text)
        await eventually(f"the echo of {text[:40]}", 10, lambda: text in self.messages)


def async_agent(testbed: Testbed) -> AsyncNexusClient:
    return AsyncNexusClient(
        testbed.broker_url, client_id=testbed.agent["client_id"], client_secret=testbed.agent["client_secret"]
    )


class Loop:
    """A running maintain_websocket task."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task

    async def wait(self, seconds: float = 15) -> BaseException:
        """What the loop ended with (it never returns), failing after ``seconds``."""
        done, _ = await asyncio.wait({self.task}, timeout=seconds)
        assert done, f"the loop still ran after {seconds} s"
        if self.task.cancelled():
            return asyncio.CancelledError()
        error = self.task.exception()
        assert error is not None, "maintain_websocket returned"
        return error

    async def cancel(self, seconds: float = 5) -> BaseException:
        self.task.cancel()
        return await self.wait(seconds)


@asynccontextmanager
async def maintained(
    testbed: Testbed,
    connection_id: str,
    url: str,
    recorder: Recorder,
    client: AsyncNexusClient | None = None,
    **options: Any,
) -> AsyncIterator[Loop]:
    """Runs maintain_websocket for the block; cancels it at the end if it still runs."""
    own = client is None
    agent = client or async_agent(testbed)
    task = asyncio.get_running_loop().create_task(
        maintain_websocket(
            agent,
            connection_id,
            url,
            on_connect=recorder.on_connect,
            on_message=recorder.on_message,
            on_disconnect=recorder.on_disconnect,
            **options,
        )
    )
    try:
        yield Loop(task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if own:
            await agent.aclose()

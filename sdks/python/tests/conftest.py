"""Fixtures: the SDK testbed (a real broker, a real OpenID provider, a verifying upstream API),
started once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus_sdk import NexusAdminClient, NexusClient

REPO = Path(__file__).resolve().parents[3]
NODE = REPO / "node_modules" / ".bin" / "node"
TESTBED = REPO / "sdks" / "testbed" / "testbed.ts"
STARTUP_SECONDS = 120


@dataclass
class Testbed:
    __test__ = False
    info: dict[str, Any]

    @property
    def broker_url(self) -> str:
        return str(self.info["broker_url"])

    @property
    def upstream_url(self) -> str:
        return str(self.info["upstream_url"])

    @property
    def admin_key(self) -> str:
        return str(self.info["admin_key"])

    @property
    def workspace_id(self) -> str:
        return str(self.info["workspace_id"])

    @property
    def agent(self) -> dict[str, str]:
        return dict(self.info["agent"])

    def connection(self, strategy: str) -> str:
        return str(self.info["connections"][strategy])

    def provider(self, strategy: str) -> str:
        return str(self.info["providers"][strategy])

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.info['control_url']}{path}", json=body, timeout=60)
        assert response.status_code < 300, f"control {method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def stats(self) -> dict[str, Any]:
        return dict(self.control("GET", "/stats"))

    def refresh_grants(self) -> int:
        """How many refresh_token grants the OpenID provider has answered."""
        return int(self.stats()["idp"]["refresh_token"])

    def upstream_counts(self, strategy: str) -> tuple[int, int]:
        entry = self.stats()["upstream"].get(strategy) or {"accepted": 0, "rejected": 0}
        return int(entry["accepted"]), int(entry["rejected"])

    def connect(self, strategy: str, workspace_id: str | None = None) -> str:
        """A new active connection, in a workspace of its own unless one is named (a new connection
        replaces the older one of the same workspace and provider)."""
        body = {"strategy": strategy, "workspace_id": workspace_id or f"ws-{uuid.uuid4().hex[:12]}"}
        return str(self.control("POST", "/connect", body)["connection_id"])

    def agent_client(self, **options: Any) -> NexusClient:
        return NexusClient(
            self.broker_url, client_id=self.agent["client_id"], client_secret=self.agent["client_secret"], **options
        )


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    if not NODE.exists():
        pytest.fail(f"Node 24 is not installed at {NODE}: run npm install at the repository root")
    process = subprocess.Popen(
        [str(NODE), str(TESTBED)],
        cwd=str(REPO),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("NEXUS_TESTBED_LOGS") else subprocess.DEVNULL,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(process.stdout.readline() if process.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(STARTUP_SECONDS)
    if not line or not line[0].strip():
        process.kill()
        pytest.fail("The testbed did not print its JSON line (set NEXUS_TESTBED_LOGS=1 to see its logs)")
    try:
        yield Testbed(json.loads(line[0]))
    finally:
        # Closing stdin stops the testbed; terminate if it lingers.
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def agent(testbed: Testbed) -> Iterator[NexusClient]:
    with testbed.agent_client() as client:
        yield client


@pytest.fixture
def admin(testbed: Testbed) -> Iterator[NexusAdminClient]:
    with NexusAdminClient(testbed.broker_url, api_key=testbed.admin_key) as client:
        yield client


class FakeClock:
    """An injectable clock (epoch seconds) that only moves when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

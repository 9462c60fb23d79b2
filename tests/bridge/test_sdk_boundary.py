"""`mcp_bridge.sdk`: the private parts of the SDK are used only for SDK versions the bridge
knows and only when present; otherwise sessions are the SDK's own and tools still work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge, sdk
from tests.bridge.sample_app import build_app

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }


CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_item", "arguments": {"item_id": "7"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@pytest.fixture(autouse=True)
def _fresh_version_check() -> Iterator[None]:
    sdk.version_is_known.cache_clear()
    yield
    sdk.version_is_known.cache_clear()


@pytest.mark.parametrize(
    ("version", "known"),
    [((2, 3, 0), True), ((2, 9, 1), True), ((3, 0, 0), False), ((2, 2, 9), False), ((1, 27), False), (None, False)],
)
def test_only_the_known_sdk_versions_open_the_private_parts(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, ...] | None, known: bool
) -> None:
    monkeypatch.setattr(sdk, "installed_version", lambda: version)
    assert sdk.version_is_known() is known


def test_the_installed_sdk_is_one_the_bridge_knows() -> None:
    # The suite runs against the SDK the package depends on: its internals are used there.
    assert sdk.version_is_known()


def _unknown_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "version_is_known", lambda: False)


def _internals_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A release that renamed its session table: the name the boundary looks for is not there
    # (the SDK itself still works, as a renamed release would).
    monkeypatch.setattr(sdk, "_MANAGER_TABLES", ("_server_instances", "_session_owners_renamed"))


@pytest.mark.parametrize("simulate", [_unknown_version, _internals_missing], ids=["unknown-version", "internals-missing"])
def test_without_the_private_parts_tools_work_through_the_sdks_own_sessions(
    monkeypatch: pytest.MonkeyPatch, simulate: Any
) -> None:
    simulate(monkeypatch)
    app, calls = build_app()
    endpoint = MCPBridge(app).mount_http("/mcp", stateless=False, json_response=True)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        # The first request that needs the SDK starts it and finds out what it offers.
        client.get("/mcp", headers={"accept": "text/event-stream"})
        opened = client.post("/mcp", json=initialize(), headers=ACCEPT)
        session = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        client.post("/mcp", json=INITIALIZED, headers=session)
        called = client.post("/mcp", json=CALL, headers=session)
        assert len(endpoint.sessions) == 0  # the session is the SDK's: none was issued by the endpoint
    assert opened.status_code == 200 and called.status_code == 200
    result = called.json()["result"]
    assert result["isError"] is False
    assert json.loads(result["content"][0]["text"])["name"] == "7"
    assert [seen["item_id"] for seen in calls.seen] == ["7"]

"""`mount_http` and `mount_sse` go through one mounting step: the shim's lifespan (which closes
its IdP connections) runs with the app whichever transport is mounted, once per app."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
from tests.bridge.token_issuer import TokenIssuer

URL = "http://127.0.0.1:8000"


def _http(bridge: MCPBridge) -> None:
    bridge.mount_http("/mcp")


def _sse(bridge: MCPBridge) -> None:
    bridge.mount_sse("/sse")


def _both(bridge: MCPBridge) -> None:
    bridge.mount_http("/mcp")
    bridge.mount_sse("/sse")


@pytest.mark.parametrize("mount", [_http, _sse, _both], ids=["mount_http", "mount_sse", "both"])
def test_the_shims_connections_are_closed_once_when_the_app_stops(
    monkeypatch: pytest.MonkeyPatch, mount: Callable[[MCPBridge], None]
) -> None:
    app, _ = build_app()
    shim = TokenIssuer().shim(URL)
    closed: list[str] = []

    async def record_close() -> None:
        closed.append("closed")

    monkeypatch.setattr(shim, "aclose", record_close)
    mount(MCPBridge(app, auth=shim))
    with TestClient(app, base_url=URL):
        assert closed == []
    assert closed == ["closed"]

"""A request for a Host the MCP endpoint does not answer to: 421 with a body naming the setting,
and one warning naming the host and `allowed_hosts`, on the fast path and the SDK path alike."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def bridge_app(**bridge_options: Any) -> Any:
    app, _ = build_app()
    MCPBridge(app, **bridge_options).mount_http("/mcp")
    return app


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-path"])
def test_a_foreign_host_gets_421_naming_allowed_hosts(fast_path: bool) -> None:
    with TestClient(bridge_app(fast_path=fast_path), base_url="http://mcp.example.org") as client:
        response = client.post("/mcp", json=INIT, headers=ACCEPT)
    assert response.status_code == 421
    assert "allowed_hosts" in response.text
    assert "mcp.example.org" not in response.text  # not echoed: the log names it


def test_a_foreign_host_is_logged_once_with_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_bridge"):
        with TestClient(bridge_app(), base_url="http://mcp.example.org") as client:
            for _ in range(3):
                client.post("/mcp", json=INIT, headers=ACCEPT)
    refused = [r.getMessage() for r in caplog.records if "refused a request for Host" in r.getMessage()]
    assert len(refused) == 1
    assert "'mcp.example.org'" in refused[0] and "allowed_hosts" in refused[0]


def test_a_loopback_host_is_served_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_bridge"):
        with TestClient(bridge_app(), base_url="http://127.0.0.1:8000") as client:
            response = client.post("/mcp", json=INIT, headers=ACCEPT)
    assert response.status_code == 200
    assert not [r for r in caplog.records if "refused a request for Host" in r.getMessage()]


def sse_app() -> Any:
    app, _ = build_app()
    MCPBridge(app).mount_sse("/sse")
    return app


@pytest.mark.parametrize(("method", "path"), [("GET", "/sse"), ("POST", "/sse/messages/?session_id=0")])
def test_the_legacy_sse_transport_also_names_allowed_hosts_in_its_421(method: str, path: str) -> None:
    with TestClient(sse_app(), base_url="http://mcp.example.org") as client:
        response = client.request(method, path, json=INIT if method == "POST" else None)
    assert response.status_code == 421
    assert "allowed_hosts" in response.text
    assert "mcp.example.org" not in response.text

"""At start-up the bridge says how many tools its endpoint serves, and warns when it serves
none although the app has routes (a bridge created before the routes were added)."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mcp_bridge import MCPBridge


def _app_with_items() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}", operation_id="get_item")
    def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def test_startup_logs_how_many_tools_the_endpoint_serves(caplog: pytest.LogCaptureFixture) -> None:
    app = _app_with_items()
    MCPBridge(app).mount_http("/mcp")
    with caplog.at_level(logging.INFO, logger="mcp_bridge.bridge"), TestClient(app):
        pass
    assert "MCP endpoint /mcp serves 1 tools (from 1 API routes)" in caplog.text


def test_a_bridge_created_before_its_routes_warns_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    bridge = MCPBridge(app)  # no routes yet: the tool table is empty

    @app.get("/items/{item_id}", operation_id="get_item")
    def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    bridge.mount_http("/mcp")
    with caplog.at_level(logging.INFO, logger="mcp_bridge.bridge"), TestClient(app):
        pass
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "serves no tools although the app has 1 API routes" in warnings[0].getMessage()
    assert "bridge.refresh()" in warnings[0].getMessage()


def test_refresh_after_adding_routes_clears_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    bridge = MCPBridge(app)

    @app.get("/items/{item_id}", operation_id="get_item")
    def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    bridge.refresh()
    bridge.mount_http("/mcp")
    with caplog.at_level(logging.INFO, logger="mcp_bridge.bridge"), TestClient(app):
        pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "serves 1 tools" in caplog.text

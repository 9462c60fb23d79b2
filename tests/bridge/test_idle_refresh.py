"""A session the SDK serves stays alive while the fast path answers its tool calls: the fast
path pushes back the SDK session's idle deadline, as the SDK's own requests do, at most once a
second per session (the transport's clock is replaced, so no test waits)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge, sdk, transport

ACCEPT = {"accept": "application/json, text/event-stream"}
CLIENT_INFO = {"name": "idle-test", "version": "1"}


def _app() -> FastAPI:
    app = FastAPI(title="idle")

    @app.get("/ping-me", operation_id="ping_me")
    def ping_me() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def _message(method: str, request_id: int | None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if request_id is not None:
        message["id"] = request_id
    return message


@pytest.mark.skipif(not sdk.version_is_known(), reason="sessions are the SDK's own with an unknown SDK")
def test_fast_path_refreshes_an_sdk_sessions_idle_deadline_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [500.0]
    monkeypatch.setattr(transport.time, "monotonic", lambda: now[0])
    refreshed: list[str] = []
    original = sdk.SessionManagerInternals.refresh_idle_deadline

    def spy(self: sdk.SessionManagerInternals, session_id: str) -> None:
        refreshed.append(session_id)
        original(self, session_id)

    monkeypatch.setattr(sdk.SessionManagerInternals, "refresh_idle_deadline", spy)
    app = _app()
    MCPBridge(app).mount_http("/mcp")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        opened = client.post(
            "/mcp",
            json=_message("initialize", 1, {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO}),
            headers=ACCEPT,
        )
        headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        client.post("/mcp", json=_message("notifications/initialized", None), headers=headers)
        # A method the fast path leaves to the SDK: the SDK takes the session over.
        assert client.post("/mcp", json=_message("resources/list", 2), headers=headers).status_code == 200

        def call(request_id: int) -> None:
            answer = client.post("/mcp", json=_message("tools/call", request_id, {"name": "ping_me"}), headers=headers)
            assert answer.json()["result"]["isError"] is False

        call(3)
        now[0] += 0.5
        call(4)
        assert refreshed == [opened.headers["mcp-session-id"]]
        now[0] += 0.5
        call(5)
        assert len(refreshed) == 2

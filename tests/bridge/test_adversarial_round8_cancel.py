"""A client's `notifications/cancelled` ends its tool call on the fast path as on the SDK's.

MCP 2025-11-25 "Cancellation": a client cancels an in-flight request with
`notifications/cancelled` naming its `requestId`. The SDK cancels the handler and answers the
request with its -32800 "Request cancelled" error; a call the fast path runs must end the
same way, or a route that never answers holds the request (and the server's shutdown) forever.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from tests.peers.servers import serve_asgi

pytestmark = pytest.mark.anyio

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
CALL = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "wait_forever", "arguments": {}}}


def _app(started: threading.Event, fast_path: bool) -> FastAPI:
    app = FastAPI()

    @app.get("/wait", operation_id="wait_forever")
    async def wait_forever() -> dict[str, Any]:
        started.set()
        await anyio.sleep_forever()
        return {}

    MCPBridge(app, fast_path=fast_path).mount_http("/mcp", json_response=True)
    return app


CANCEL = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
CANCELLED = {"jsonrpc": "2.0", "id": 9, "error": {"code": -32800, "message": "Request cancelled"}}


async def _cancel_a_running_call(fast_path: bool, times: int) -> tuple[httpx.Response, list[httpx.Response], httpx.Response]:
    """A stateful session's call that never ends, cancelled `times` times once it runs: the
    call's answer, the cancellations' answers, and the answer to a ping sent afterwards."""
    started = threading.Event()
    with serve_asgi(_app(started, fast_path)) as server:
        url = server.url + "/mcp"
        async with httpx.AsyncClient(timeout=30) as http:
            opened = await http.post(url, json=INITIALIZE, headers=ACCEPT)
            session = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
            await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            answers: dict[str, httpx.Response] = {}

            async def call() -> None:
                answers["call"] = await http.post(url, json=CALL, headers=session)

            with anyio.fail_after(20):  # a bound for a hang, not a timing assertion
                async with anyio.create_task_group() as calls:
                    calls.start_soon(call)
                    await anyio.to_thread.run_sync(started.wait)
                    cancels = [await http.post(url, json=CANCEL, headers=session) for _ in range(times)]
            pinged = await http.post(url, json={"jsonrpc": "2.0", "id": 10, "method": "ping"}, headers=session)
    return answers["call"], cancels, pinged


@pytest.mark.parametrize("fast_path", [True, False])
async def test_cancelled_notification_ends_the_tool_call_with_the_sdks_answer(fast_path: bool) -> None:
    call, cancels, _ = await _cancel_a_running_call(fast_path, times=1)
    assert cancels[0].status_code == 202
    assert call.status_code == 200
    assert call.json() == CANCELLED


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_cancellation_sent_three_times_ends_the_call_once_and_the_session_serves_on(fast_path: bool) -> None:
    call, cancels, pinged = await _cancel_a_running_call(fast_path, times=3)
    assert [answer.status_code for answer in cancels] == [202, 202, 202]
    assert call.json() == CANCELLED
    assert pinged.json() == {"jsonrpc": "2.0", "id": 10, "result": {}}

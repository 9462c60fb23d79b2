"""Routes that misbehave: the tool result says so, on the fast path and the SDK path alike.

A route that fails after it started its answer (status sent, part of the body written) leaves
no answer a client over HTTP could take as a response: the server cuts the connection. The
bridge must not hand the partial body to the model as a successful result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from mcp_bridge import MCPBridge
from tests.bridge.conftest import origin_scope
from tests.peers.servers import serve_asgi

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _failing_stream() -> Iterator[bytes]:
    yield b'{"balance": 10'
    raise RuntimeError("the database went away")


class _UnfinishedAnswer(Response):
    """Returns after half its body, without the last `http.response.body` message."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first half", "more_body": True})


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/stream", operation_id="stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(_failing_stream(), media_type="application/json")

    @app.get("/unfinished", operation_id="unfinished")
    def unfinished() -> Response:
        return _UnfinishedAnswer()

    return app


def _results(tool: str) -> list[dict[str, Any]]:
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    results = []
    for fast_path in (True, False):
        app = _app()
        MCPBridge(app, fast_path=fast_path).mount_http("/mcp", stateless=True, json_response=True)
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            response = client.post("/mcp", json=call, headers=ACCEPT)
        assert response.status_code == 200
        results.append(response.json()["result"])
    return results


@pytest.mark.parametrize("tool", ["stream", "unfinished"])
def test_a_route_that_fails_after_starting_its_answer_is_a_tool_error_not_its_partial_body(tool: str) -> None:
    fast, sdk = _results(tool)
    assert fast == sdk
    assert fast["isError"] is True
    assert fast["content"] == [{"type": "text", "text": "HTTP 500"}]


@pytest.mark.anyio
@pytest.mark.parametrize("tool", ["stream", "unfinished"])
async def test_an_api_that_cuts_its_answer_off_is_a_502_tool_error_over_http_client(
    tool: str, caplog: pytest.LogCaptureFixture
) -> None:
    # `http_client`: the API runs elsewhere (here: real uvicorn, which cuts the connection when
    # the route fails mid-answer); the bridge reads the answer over HTTP.
    with serve_asgi(_app()) as api:
        async with httpx.AsyncClient(base_url=api.url) as http:
            bridge = MCPBridge(_app(), http_client=http)
            with caplog.at_level(logging.ERROR, logger="mcp_bridge"):
                result = await bridge.call(tool, {}, origin_scope())
    assert result["isError"] is True
    assert result["content"][0]["text"] == "HTTP 502: the API's answer was cut off: RemoteProtocolError"
    assert not [record for record in caplog.records if record.name.startswith("mcp_bridge")]

"""Hostile JSON-RPC requests: the fast path answers exactly what the SDK answers.

The fast path may answer a request only when the SDK would accept it; anything the SDK refuses
(here: a body that is no Unicode text, or headers it reads differently) must reach the SDK and
get the SDK's own answer. Each request is sent with the fast path on and off.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}", operation_id="get_item")
    def get_item(item_id: str, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q}

    return app


def _answers(raw: bytes, headers: list[tuple[str, str]] | None = None, **mount: Any) -> list[tuple[int, Any]]:
    """Status and JSON body of the endpoint's answer to `raw`, fast path first, then the SDK's."""
    answers = []
    for fast_path in (True, False):
        app = _app()
        MCPBridge(app, fast_path=fast_path).mount_http("/mcp", **mount)
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            response = client.post("/mcp", content=raw, headers=headers or list(ACCEPT.items()))
        try:
            body = response.json()
        except ValueError:
            body = response.text
        answers.append((response.status_code, body))
    return answers


def _call(arguments: str, *, name: str = "get_item", request_id: str = "1") -> bytes:
    # Written by hand: `json.dumps` would refuse nothing, but no client library writes these.
    text = '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":%s}}'
    return (text % (request_id, name, arguments)).encode()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_call('{"item_id":"\\ud800"}'), id="path-argument"),
        pytest.param(_call('{"item_id":"a","q":"x\\uDC00"}'), id="query-argument"),
        pytest.param(_call("{}", name="\\ud800x"), id="tool-name"),
        pytest.param(_call('{"item_id":"a"}', request_id='"\\ud800"'), id="request-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"k":"\\udfff"}}}', id="list"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"k":"\\ud800"}}}', id="ping"),
    ],
)
def test_request_with_a_lone_surrogate_escape_gets_the_sdks_parse_error(raw: bytes) -> None:
    fast, sdk = _answers(raw, stateless=True, json_response=True)
    assert fast == sdk
    assert fast[0] == 400
    assert fast[1]["error"]["code"] == -32700


_TOOLS_LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # The SDK reads the first of a repeated header (Starlette's `Headers.get`).
        pytest.param([("host", "evil.example"), ("host", "127.0.0.1:8000")], 421, id="foreign-host-first"),
        pytest.param([("origin", "http://evil.example"), ("origin", "http://127.0.0.1:8000")], 403, id="foreign-origin"),
        pytest.param([("content-type", "text/plain"), ("content-type", "application/json")], 400, id="content-type"),
        pytest.param([("accept", "text/html"), ("accept", "application/json, text/event-stream")], 406, id="accept"),
    ],
)
def test_a_repeated_header_is_read_as_the_sdk_reads_it(headers: list[tuple[str, str]], status: int) -> None:
    names = {name for name, _ in headers}
    sent = [(k, v) for k, v in ACCEPT.items() if k not in names] + headers
    fast, sdk = _answers(_TOOLS_LIST, sent, stateless=True, json_response=True)
    assert fast[0] == sdk[0] == status


@pytest.mark.parametrize(("depth", "status"), [(150, 200), (198, 200), (199, 400), (400, 400)])
def test_arguments_nested_deeper_than_the_sdks_parser_takes_get_its_parse_error(depth: int, status: int) -> None:
    # The SDK parses with pydantic-core, which takes 201 levels; the message, its params and
    # the arguments object are three of them. (Python's `json` takes about 1000.)
    nested = "[" * depth + "]" * depth
    fast, sdk = _answers(_call('{"item_id":"a","q":%s}' % nested), stateless=True, json_response=True)
    assert fast == sdk
    assert fast[0] == status


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("APPLICATION/JSON", 415),  # the SDK compares the type case-sensitively
        ("Application/Json; charset=utf-8", 415),
        (" application/json", 400),  # its transport security: a prefix test, no leading space
        ("application/json; charset=utf-8", 200),
        ("application/json, text/plain", 200),  # the SDK takes it: served (by the SDK) on both
    ],
)
@pytest.mark.parametrize("json_response", [True, False])
def test_a_content_type_the_sdk_refuses_gets_the_sdks_answer(content_type: str, status: int, json_response: bool) -> None:
    headers = [("content-type", content_type), ("accept", ACCEPT["accept"])]
    fast, sdk = _answers(_TOOLS_LIST, headers, stateless=True, json_response=json_response)
    assert fast[0] == sdk[0] == status


_GET_ITEM = {"name": "get_item", "arguments": {"item_id": "a"}}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"method": "tools/call", "params": {**_GET_ITEM, "_meta": "x"}}, id="call-meta-string"),
        pytest.param({"method": "tools/call", "params": {**_GET_ITEM, "_meta": {"progressToken": {}}}}, id="call-token"),
        pytest.param({"method": "tools/call", "params": {**_GET_ITEM, "_meta": {"progressToken": 1.5}}}, id="float-token"),
        pytest.param({"method": "tools/list", "params": {"_meta": 5}}, id="list-meta-number"),
        pytest.param({"method": "ping", "params": {"_meta": []}}, id="ping-meta-array"),
        pytest.param({"method": "ping", "error": {"code": 1, "message": "x"}}, id="request-with-an-error-member"),
        pytest.param({"method": "ping", "result": {}}, id="request-with-a-result-member"),
        # Accepted by the SDK, and served the same way by the fast path:
        pytest.param({"method": "tools/call", "params": {**_GET_ITEM, "_meta": {"progressToken": "t"}}}, id="str-token"),
        pytest.param({"method": "tools/call", "params": {**_GET_ITEM, "_meta": {"progressToken": 7}}}, id="int-token"),
        pytest.param({"method": "tools/list", "params": {"_meta": None}}, id="null-meta"),
    ],
)
@pytest.mark.parametrize("stateless", [True, False])
def test_request_params_the_sdk_refuses_get_the_sdks_answer(message: dict[str, Any], stateless: bool) -> None:
    raw = json.dumps({"jsonrpc": "2.0", "id": 5, **message}).encode()
    fast, sdk = _answers(raw, stateless=True, json_response=True) if stateless else _stateful_answers(raw)
    assert fast == sdk


def _stateful_answers(raw: bytes) -> list[tuple[int, Any]]:
    """As `_answers`, inside an initialized stateful session (the fast path's own session)."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    answers = []
    for fast_path in (True, False):
        app = _app()
        MCPBridge(app, fast_path=fast_path).mount_http("/mcp", json_response=True)
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            opened = client.post("/mcp", json=initialize, headers=ACCEPT)
            session = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
            client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            response = client.post("/mcp", content=raw, headers=session)
        answers.append((response.status_code, response.json() if response.content else None))
    return answers

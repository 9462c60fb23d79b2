"""JSON-RPC garbage at the Streamable HTTP endpoint, through real uvicorn on 127.0.0.1.

Whatever the body, the answer is the one the transport calls for (MCP 2025-11-25 "Transports";
JSON-RPC 2.0 §5.1): HTTP 400 with a `-32700` parse error for a body that is not JSON text, and
the fast path and the SDK path agree on what JSON text is. RFC 8259 §8.1 makes JSON exchanged
between systems UTF-8 (and forbids adding a byte order mark); the SDK's parser holds to that, so
a body in another encoding must not become a tool call on the fast path either.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
from tests.peers.servers import RunningServer, serve_asgi

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_trees", "arguments": {}}}
LIST = {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}


@contextlib.contextmanager
def served(fast_path: bool) -> Iterator[RunningServer]:
    app, _ = build_app()
    MCPBridge(app, fast_path=fast_path).mount_http("/mcp", stateless=True)
    with serve_asgi(app) as running:
        yield running


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "sdk-only"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with served(request.param) as running:
        yield running


def _is_parse_error(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["error"]["code"] == -32700


ENCODINGS = [
    pytest.param(lambda text: text.encode("utf-16"), id="utf-16-with-bom"),
    pytest.param(lambda text: text.encode("utf-16-le"), id="utf-16-le"),
    pytest.param(lambda text: text.encode("utf-32"), id="utf-32-with-bom"),
    pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode(), id="utf-8-with-bom"),
]


@pytest.mark.parametrize("encode", ENCODINGS)
@pytest.mark.parametrize("message", [CALL, LIST], ids=["tools-call", "tools-list"])
def test_a_body_that_is_not_utf8_json_is_a_parse_error(server: RunningServer, encode, message) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(server.url + "/mcp", content=encode(json.dumps(message)), headers=ACCEPT, timeout=10)
    assert _is_parse_error(response), (response.status_code, response.text[:200])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested-array"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="deeply-nested-object"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping\xff"}', id="invalid-utf8"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping"', id="truncated"),
        pytest.param(b'{"jsonrpc":"2.0","id":' + b"1" * 5000 + b',"method":"ping"}', id="id-beyond-int-parsing"),
    ],
)
def test_garbage_that_is_no_json_text_is_a_parse_error(server: RunningServer, body: bytes) -> None:
    response = httpx.post(server.url + "/mcp", content=body, headers=ACCEPT, timeout=10)
    assert _is_parse_error(response), (response.status_code, response.text[:200])

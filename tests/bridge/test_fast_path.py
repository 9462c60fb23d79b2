"""The endpoint's fast path answers exactly like the SDK, and its sessions become the SDK's.

The fast path answers `initialize`, `notifications/initialized`, `ping`, `tools/list` and
`tools/call` without the SDK, and in stateful mode issues the session itself; the first
request it does not serve hands that session to the SDK. These tests compare the two paths
answer for answer and follow sessions across the hand-over.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_bridge.handshake import HANDSHAKE_VERSIONS, initialize_params_are_plain
from mcp_bridge.sessions import SessionTable
from tests.bridge.conftest import origin_scope
from tests.bridge.sample_app import build_app
from tests.peers.servers import RunningServer, serve_asgi

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
CLIENT_INFO = {"name": "t", "version": "1"}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def initialize(version: str = "2025-11-25", **params: Any) -> dict[str, Any]:
    body = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO, **params}
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": body}


def message_of(response: httpx.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])
    return response.json()


@contextlib.contextmanager
def local(app: FastAPI, *, fast_path: bool = True, **mount: Any) -> Iterator[TestClient]:
    MCPBridge(app, fast_path=fast_path).mount_http("/mcp", **mount)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def answers(app_factory: Any, messages: list[dict[str, Any]], **mount: Any) -> list[list[dict[str, Any]]]:
    """The JSON-RPC answers of the fast path and of the SDK alone to the same messages."""
    both = []
    for fast_path in (True, False):
        with local(app_factory(), fast_path=fast_path, **mount) as client:
            both.append([message_of(client.post("/mcp", json=m, headers=ACCEPT)) for m in messages])
    return both


def bare_app() -> FastAPI:
    # No description: the fields the SDK leaves out.
    app = FastAPI(title="bare")

    @app.get("/ping-me", operation_id="ping_me")
    def ping_me() -> dict[str, str]:
        return {"ok": "yes"}

    return app


# -- the handshake ----------------------------------------------------------------------


def test_fast_path_knows_exactly_the_sdks_handshake_revisions() -> None:
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    assert HANDSHAKE_VERSIONS == HANDSHAKE_PROTOCOL_VERSIONS


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
@pytest.mark.parametrize("version", [*HANDSHAKE_VERSIONS, "2026-07-28", "1999-01-01"])
@pytest.mark.parametrize("app_factory", [lambda: build_app()[0], bare_app], ids=["described", "bare"])
def test_initialize_answer_is_the_sdks(app_factory: Any, version: str, stateless: bool) -> None:
    fast, sdk = answers(app_factory, [initialize(version)], stateless=stateless)
    assert fast == sdk
    assert "result" in fast[0]


@pytest.mark.parametrize(
    "params",
    [
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
        {"protocolVersion": "2025-11-25", "capabilities": {"roots": "yes"}, "clientInfo": CLIENT_INFO},
        {"protocolVersion": 20251125, "capabilities": {}, "clientInfo": CLIENT_INFO},
        {"capabilities": {}, "clientInfo": CLIENT_INFO},
    ],
)
def test_malformed_initialize_gets_the_sdks_error(params: dict[str, Any]) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    fast, sdk = answers(lambda: build_app()[0], [message])
    assert fast == sdk
    assert "error" in fast[0]


@pytest.mark.parametrize(
    ("params", "plain"),
    [
        (initialize()["params"], True),
        (initialize(capabilities={"roots": {"listChanged": True}, "sampling": {"tools": {}}})["params"], True),
        (initialize(capabilities={"experimental": {"x": {"any": [1, 2]}}})["params"], True),
        (initialize(clientInfo={**CLIENT_INFO, "title": "T", "websiteUrl": "https://x.example"})["params"], True),
        (initialize(clientInfo={**CLIENT_INFO, "icons": [{"src": "https://x.example/i.png"}]})["params"], False),
        (initialize(capabilities={"sampling": {"tools": True}})["params"], False),
        (initialize(capabilities={"experimental": {"x": 1}})["params"], False),
        (initialize(_meta={"progressToken": 1})["params"], False),
        (None, False),
    ],
)
def test_only_plain_initialize_params_are_answered_without_the_sdk(params: Any, plain: bool) -> None:
    assert initialize_params_are_plain(params) is plain


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
def test_ping_answer_is_the_sdks(stateless: bool) -> None:
    ping = {"jsonrpc": "2.0", "id": "p-1", "method": "ping"}
    results = []
    for fast_path in (True, False):
        with local(build_app()[0], fast_path=fast_path, stateless=stateless) as client:
            opened = client.post("/mcp", json=initialize(), headers=ACCEPT)
            session = {"mcp-session-id": opened.headers["mcp-session-id"]} if not stateless else {}
            headers = {**ACCEPT, **session, "mcp-protocol-version": "2025-11-25"}
            notified = client.post("/mcp", json=INITIALIZED, headers=headers)
            results.append((notified.status_code, message_of(client.post("/mcp", json=ping, headers=headers))))
    assert results[0] == results[1] == (202, {"jsonrpc": "2.0", "id": "p-1", "result": {}})


_NO_SDK_STATEFUL_SCRIPT = """
import json, sys
from starlette.testclient import TestClient
from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
app, _ = build_app()
MCPBridge(app).mount_http(stateless=False)
headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
with TestClient(app, base_url="http://127.0.0.1:8000") as client:
    opened = client.post("/mcp", json=init, headers=headers)
    headers["mcp-session-id"] = opened.headers["mcp-session-id"]
    headers["mcp-protocol-version"] = "2025-11-25"
    statuses = [opened.status_code]
    for message in ({"jsonrpc": "2.0", "method": "notifications/initialized"},
                    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                    {"jsonrpc": "2.0", "id": 2, "method": "ping"},
                    {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "text", "arguments": {}}}):
        statuses.append(client.post("/mcp", json=message, headers=headers).status_code)
    statuses.append(client.delete("/mcp", headers=headers).status_code)
    ping = {"jsonrpc": "2.0", "id": 4, "method": "ping"}
    statuses.append(client.post("/mcp", json=ping, headers=headers).status_code)
print(json.dumps({"statuses": statuses,
                  "sdk": sorted(m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "mcp_types")))}))
"""


def test_stateful_session_of_a_tool_client_does_not_load_the_sdk() -> None:
    # Start-up time and memory: a client that initializes, lists and calls tools needs no SDK.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _NO_SDK_STATEFUL_SCRIPT],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [200, 202, 200, 200, 200, 200, 404]
    assert report["sdk"] == []


# -- sessions ---------------------------------------------------------------------------


@contextlib.contextmanager
def served(**mount: Any) -> Iterator[RunningServer]:
    app, _ = build_app()
    MCPBridge(app).mount_http("/mcp", **mount)
    with serve_asgi(app) as running:
        yield running


def open_session(http: httpx.Client, url: str) -> dict[str, str]:
    opened = http.post(url, json=initialize(), headers=ACCEPT)
    assert opened.status_code == 200
    headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    assert http.post(url, json=INITIALIZED, headers=headers).status_code == 202
    return headers


def call_text(http: httpx.Client, url: str, headers: dict[str, str]) -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "text", "arguments": {}}}
    return http.post(url, json=message, headers=headers)


def test_session_is_handed_to_the_sdk_by_its_first_sdk_request() -> None:
    with served(stateless=False) as server, httpx.Client(timeout=10) as http:
        url = server.url + "/mcp"
        headers = open_session(http, url)
        # resources/list is the SDK's to answer: it serves the session it never opened.
        other = http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "resources/list"}, headers=headers)
        with http.stream("GET", url, headers={**headers, "accept": "text/event-stream"}) as stream:
            streamed = (stream.status_code, stream.headers["content-type"], stream.headers["mcp-session-id"])
        after = call_text(http, url, headers)
        ended = http.delete(url, headers=headers)
        gone = call_text(http, url, headers)
    assert other.status_code == 200 and message_of(other)["error"]["message"] == "Method not found"
    assert streamed[0] == 200 and streamed[1].startswith("text/event-stream")
    assert streamed[2] == headers["mcp-session-id"]
    assert message_of(after)["result"]["content"][0]["text"] == "plain words"
    assert (ended.status_code, gone.status_code) == (200, 404)


def test_session_id_is_echoed_and_unknown_ids_stay_unknown() -> None:
    with served(stateless=False) as server, httpx.Client(timeout=10) as http:
        url = server.url + "/mcp"
        headers = open_session(http, url)
        mine = call_text(http, url, headers)
        forged = call_text(http, url, {**headers, "mcp-session-id": headers["mcp-session-id"][::-1]})
        forged_delete = http.delete(url, headers={**headers, "mcp-session-id": "0" * 32})
        still_mine = call_text(http, url, headers)
    assert mine.headers["mcp-session-id"] == headers["mcp-session-id"]
    assert (forged.status_code, forged_delete.status_code, still_mine.status_code) == (404, 404, 200)
    assert forged.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}}


def test_a_session_the_sdk_will_not_take_over_ends_and_later_sessions_are_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mcp_bridge import sdk

    async def refuse(*args: Any) -> bool:
        raise RuntimeError("this SDK cannot adopt sessions")

    monkeypatch.setattr(sdk.SessionManagerInternals, "adopt", refuse)
    with served(stateless=False) as server, httpx.Client(timeout=10) as http:
        url = server.url + "/mcp"
        headers = open_session(http, url)
        other = http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "resources/list"}, headers=headers)
        reopened = http.post(url, json=initialize(), headers=ACCEPT)
    assert other.status_code == 404
    # Served by the SDK itself this time (its answers to initialize are an event stream).
    assert reopened.status_code == 200 and reopened.headers["content-type"].startswith("text/event-stream")


def test_sessions_beyond_the_limit_are_refused_like_the_sdk_does() -> None:
    app, _ = build_app()
    endpoint = MCPBridge(app).mount_http("/mcp", stateless=False)
    endpoint.sessions.max_sessions = 1
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        first = client.post("/mcp", json=initialize(), headers=ACCEPT)
        second = client.post("/mcp", json=initialize(), headers=ACCEPT)
    assert (first.status_code, second.status_code) == (200, 503)
    assert second.json()["error"] == {"code": -32603, "message": "Too many open sessions"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_session_expires() -> None:
    clock = FakeClock()
    table = SessionTable(idle_timeout=60, clock=clock)
    session = table.open(None, initialize()["params"], "2025-11-25")
    assert session is not None
    clock.now += 59
    assert table.find(session.id, None) is session
    clock.now += 61
    assert table.find(session.id, None) is None


def test_session_is_found_only_for_its_owner() -> None:
    table = SessionTable()
    session = table.open({"client_id": "a", "issuer": None, "subject": "alice"}, initialize()["params"], "2025-11-25")
    assert session is not None
    assert table.find(session.id, {"client_id": "a", "issuer": None, "subject": "mallory"}) is None
    assert table.find(session.id, None) is None
    assert table.find(session.id, {"client_id": "a", "issuer": None, "subject": "alice"}) is session


# -- tool results -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_item", {"name": "pen", "price": 2.5, "tags": ["é", "\u2028"]}),
        ("list_trees", {}),
        ("echo_tree", {"label": "a", "children": [{"label": "b", "children": []}]}),
        ("sum_numbers", {"body": [1, 2, 3]}),
        ("echo_name", {"body": "zed \u00e9"}),
        ("replace_item", {"item_id": 3, "item": {"name": "x", "price": 1}}),
        ("replace_item", {"item_id": 3, "name": "x", "price": 1}),
        ("delete_item", {"item_id": 3}),
        ("login_form", {"username": "ann"}),
        ("text", {}),
        ("png", {}),
        ("wav", {}),
        ("pdf", {}),
        ("redirect_away", {}),
        ("fail", {"code": 418}),
        ("crash", {}),
        ("get_item", {"item_id": ".."}),
        ("get_item", {}),
        ("no_such_tool", {}),
    ],
)
async def test_encoded_result_is_the_result(tool: str, arguments: dict[str, Any]) -> None:
    bridge = MCPBridge(build_app()[0])
    origin = origin_scope()
    encoded = await bridge.call(tool, arguments, origin, encoded=True)
    assert json.loads(encoded) == await bridge.call(tool, arguments, origin)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "structured"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'{"a": NaN}', None),
        (b'{"a": Infinity}', None),
        (b'{"a": 1', None),
        (b"[1, 2]", None),
        (b'{"a": "\xff"}', None),
    ],
)
async def test_only_strict_json_objects_become_structured_content(body: bytes, structured: Any) -> None:
    app = FastAPI()

    @app.get("/raw", operation_id="raw", response_model=dict[str, int])
    def raw() -> Response:
        return Response(body, media_type="application/json")

    encoded = await MCPBridge(app).call("raw", {}, origin_scope(), encoded=True)

    def refuse(name: str) -> Any:
        raise ValueError(name)

    result = json.loads(encoded, parse_constant=refuse)  # what goes on the wire is strict JSON
    assert result.get("structuredContent") == structured
    assert result["isError"] is False


# -- telemetry --------------------------------------------------------------------------


def test_tool_call_is_still_traced_as_its_route_when_fastapi_traces_requests() -> None:
    from opentelemetry import trace

    spans: list[Any] = []

    class Span(trace.NonRecordingSpan):
        def __init__(self, name: str) -> None:
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.name, self.attributes = name, {}
            spans.append(self)

        def set_attributes(self, attributes: Any) -> None:
            self.attributes.update(attributes)

        def set_attribute(self, key: str, value: Any) -> None:
            self.attributes[key] = value

    class Tracer(trace.NoOpTracer):
        def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
            return Span(name)

    class Provider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            return Tracer()

    app = FastAPI(telemetry={"tracer_provider": Provider(), "metrics": False, "logs": False})

    @app.get("/things/{thing_id}", operation_id="get_thing")
    def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    params = {"name": "get_thing", "arguments": {"thing_id": 3}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    with local(app, stateless=True) as client:
        answer = message_of(client.post("/mcp", json=call, headers=ACCEPT))
    assert answer["result"]["structuredContent"] == {"id": 3}
    routes = {span.attributes.get("http.route") for span in spans}
    assert "/things/{thing_id}" in routes

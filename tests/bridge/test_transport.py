"""Streamable HTTP through real uvicorn on 127.0.0.1 with the official `mcp` SDK client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
from tests.peers.servers import RunningServer, serve_asgi

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

MODES = [
    pytest.param({"stateless": False}, True, id="stateful"),
    pytest.param({"stateless": True}, True, id="stateless"),
    pytest.param({"stateless": False, "json_response": True}, True, id="stateful-json"),
    pytest.param({"stateless": False}, False, id="stateful-sdk-only"),
    pytest.param({"stateless": True}, False, id="stateless-sdk-only"),
]


@contextlib.contextmanager
def served(mount: dict[str, Any], fast_path: bool = True, **bridge_options: Any) -> Iterator[RunningServer]:
    app, _ = build_app()
    MCPBridge(app, fast_path=fast_path, **bridge_options).mount_http("/mcp", **mount)
    with serve_asgi(app) as running:
        yield running


@contextlib.asynccontextmanager
async def client(url: str, mode: str = "legacy", headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as mcp:  # type: ignore[arg-type]
        yield mcp


@pytest.mark.parametrize("client_mode", ["legacy", "auto"])
@pytest.mark.parametrize(("mount", "fast_path"), MODES)
async def test_sdk_client_lists_and_calls_tools(mount: dict[str, Any], fast_path: bool, client_mode: str) -> None:
    with served(mount, fast_path) as server:
        async with client(server.url + "/mcp", client_mode) as mcp:
            names = {tool.name for tool in (await mcp.list_tools()).tools}
            result = await mcp.call_tool("create_item", {"name": "pen", "price": 2})
    assert {"get_item", "create_item", "echo_tree"} <= names
    assert result.structured_content == {"id": 7, "name": "pen", "price": 2.0}
    assert result.is_error is False


@pytest.mark.parametrize(("mount", "fast_path"), MODES)
async def test_client_authorization_reaches_the_route(mount: dict[str, Any], fast_path: bool) -> None:
    with served(mount, fast_path) as server:
        async with client(server.url + "/mcp", headers={"Authorization": "Bearer passthrough-1"}) as mcp:
            result = await mcp.call_tool("whoami", {})
    assert json.loads(result.content[0].text)["authorization"] == "Bearer passthrough-1"  # type: ignore[union-attr]


@pytest.mark.parametrize("json_response", [False, True])
def test_fast_and_sdk_paths_give_the_same_tool_list(json_response: bool) -> None:
    # The pre-encoded answer and the SDK's own serialization must agree.
    answers = []
    for use_fast in (True, False):
        with served({"stateless": True, "json_response": json_response}, use_fast) as server:
            response = httpx.post(
                server.url + "/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=ACCEPT
            )
            answers.append(_json_rpc(response))
    assert answers[0] == answers[1]
    assert len(answers[0]["result"]["tools"]) > 20


def test_fast_and_sdk_paths_give_the_same_call_result() -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/call",
        "params": {"name": "list_trees", "arguments": {}},
    }
    answers = []
    for use_fast in (True, False):
        with served({"stateless": True}, use_fast) as server:
            answers.append(_json_rpc(httpx.post(server.url + "/mcp", json=call, headers=ACCEPT)))
    assert answers[0] == answers[1]


def _json_rpc(response: httpx.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])
    return response.json()


def _initialize(http: httpx.Client, url: str) -> str:
    response = http.post(url, json=INIT, headers=ACCEPT)
    assert response.status_code == 200
    session = response.headers["mcp-session-id"]
    http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=_session(session))
    return session


def _session(session: str) -> dict[str, str]:
    return {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}


@pytest.mark.parametrize("gated", [False, True], ids=["plain", "behind-dependencies"])
def test_get_stream_sends_its_headers_at_once(gated: bool) -> None:
    options: dict[str, Any] = {"dependencies": [Depends(_require_key)]} if gated else {}
    key = {"x-api-key": "letmein"}
    with served({"stateless": False}, **options) as server, httpx.Client(timeout=10, headers=key) as http:
        url = server.url + "/mcp"
        session = _initialize(http, url)
        # The read timeout only guards against a hang; a buffered stream would trip it.
        with http.stream("GET", url, headers={**_session(session), "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")


def test_delete_ends_the_session() -> None:
    with served({"stateless": False}) as server, httpx.Client(timeout=10) as http:
        url = server.url + "/mcp"
        session = _initialize(http, url)
        assert http.delete(url, headers=_session(session)).status_code in (200, 204)
        after = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=_session(session))
    assert after.status_code == 404


def test_unknown_session_is_404_on_the_fast_path() -> None:
    with served({"stateless": False}) as server:
        response = httpx.post(
            server.url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=_session("f" * 32)
        )
    assert response.status_code == 404


@pytest.mark.parametrize("stateless", [False, True])
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"host": "evil.example.com"}, 421),
        ({"origin": "http://evil.example.com"}, 403),
        ({"host": "evil.example.com:80", "origin": "http://evil.example.com"}, 421),
    ],
)
@pytest.mark.parametrize("method", ["initialize", "tools/list"])
def test_foreign_host_or_origin_is_refused(stateless: bool, headers: dict[str, str], status: int, method: str) -> None:
    with served({"stateless": stateless}) as server:
        body = INIT if method == "initialize" else {"jsonrpc": "2.0", "id": 2, "method": method}
        response = httpx.post(server.url + "/mcp", json=body, headers={**ACCEPT, **headers})
    assert response.status_code == status


def test_configured_public_host_is_accepted() -> None:
    with served({"allowed_hosts": ["api.example.com"], "stateless": True}) as server:
        ok = httpx.post(server.url + "/mcp", json=INIT, headers={**ACCEPT, "host": "api.example.com"})
        local = httpx.post(server.url + "/mcp", json=INIT, headers=ACCEPT)
    assert (ok.status_code, local.status_code) == (200, 421)


async def test_apps_own_lifespan_still_runs() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("start")
        yield {"greeting": "hello"}
        events.append("stop")

    app = FastAPI(lifespan=lifespan)

    @app.get("/greet", operation_id="greet")
    def greet(request: Any = None) -> str:
        return "hi"

    MCPBridge(app).mount_http()
    with serve_asgi(app) as server:
        async with client(server.url + "/mcp") as mcp:
            result = await mcp.call_tool("greet", {})
    assert result.content[0].text == '"hi"'  # type: ignore[union-attr]
    assert events == ["start", "stop"]


def test_endpoint_without_lifespan_says_so() -> None:
    from starlette.testclient import TestClient

    app, _ = build_app()
    MCPBridge(app).mount_http()
    response = TestClient(app).post("/mcp", json=INIT, headers=ACCEPT)  # no `with`: lifespan not run
    assert response.status_code == 503
    assert b"lifespan" in response.content


async def test_mount_on_a_separate_app() -> None:
    source, calls = build_app()
    host = FastAPI()
    MCPBridge(source).mount_http("/mcp", router=host)
    with serve_asgi(host) as server:
        async with client(server.url + "/mcp") as mcp:
            result = await mcp.call_tool("get_item", {"item_id": "x1"})
        assert httpx.get(server.url + "/items/x1").status_code == 404  # the host serves only MCP
    assert result.structured_content == {"id": 2, "name": "x1", "price": 1.0}
    assert calls.seen[-1]["route"] == "get_item"


async def test_mount_on_a_router_included_afterwards() -> None:
    source, _ = build_app()
    router = APIRouter(prefix="/agents")
    MCPBridge(source).mount_http("/mcp", router=router)
    host = FastAPI()
    host.include_router(router)
    with serve_asgi(host) as server:
        async with client(server.url + "/agents/mcp") as mcp:
            names = {tool.name for tool in (await mcp.list_tools()).tools}
    assert "get_item" in names


def _require_key(x_api_key: str | None = Header(None)) -> None:
    if x_api_key != "letmein":
        raise HTTPException(status_code=401, detail="missing key")


def _require_key_403(x_api_key: str | None = Header(None)) -> None:
    if x_api_key != "letmein":
        raise HTTPException(status_code=403, detail="Not authenticated")


@pytest.mark.parametrize("dependency", [_require_key, _require_key_403])
def test_dependencies_refuse_without_auth_with_a_bearer_challenge(dependency: Any) -> None:
    with served({"stateless": True}, dependencies=[Depends(dependency)]) as server:
        response = httpx.post(server.url + "/mcp", json=INIT, headers=ACCEPT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_dependencies_let_an_authorized_client_through() -> None:
    with served({"stateless": False}, dependencies=[Depends(_require_key)]) as server:
        async with client(server.url + "/mcp", headers={"X-API-Key": "letmein"}) as mcp:
            result = await mcp.call_tool("text", {})
    assert result.content[0].text == "plain words"  # type: ignore[union-attr]


def test_dependency_overrides_of_the_app_apply_to_the_gate() -> None:
    app, _ = build_app()
    MCPBridge(app, dependencies=[Depends(_require_key)]).mount_http(stateless=True)
    app.dependency_overrides[_require_key] = lambda: None
    with serve_asgi(app) as server:
        response = httpx.post(server.url + "/mcp", json=INIT, headers=ACCEPT)
    assert response.status_code == 200


def test_fast_path_knows_exactly_the_sdks_handshake_revisions() -> None:
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    from mcp_bridge.transport import HANDSHAKE_VERSION_HEADERS

    assert HANDSHAKE_VERSION_HEADERS == {v.encode() for v in HANDSHAKE_PROTOCOL_VERSIONS}


_NO_SDK_SCRIPT = """
import json, sys
from starlette.testclient import TestClient
from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
app, _ = build_app()
MCPBridge(app).mount_http(stateless=True)
with TestClient(app, base_url="http://127.0.0.1:8000") as client:
    answer = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"accept": "application/json, text/event-stream"})
print(json.dumps({"tools": len(answer.json()["result"]["tools"]),
                  "sdk": sorted(m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "mcp_types")))}))
"""


def test_stateless_tools_list_does_not_load_the_sdk() -> None:
    # Start-up time and memory of a bridge with many routes must stay close to the bare app's.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _NO_SDK_SCRIPT], capture_output=True, text=True, cwd=root, timeout=120, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tools"] > 20
    assert report["sdk"] == []


@pytest.mark.parametrize("with_http_too", [False, True])
async def test_legacy_sse_transport_lists_and_calls_tools(with_http_too: bool) -> None:
    from mcp.client.sse import sse_client

    app, calls = build_app()
    bridge = MCPBridge(app)
    if with_http_too:
        bridge.mount_http("/mcp")
    bridge.mount_sse("/sse")
    with serve_asgi(app) as server:
        async with Client(sse_client(server.url + "/sse", headers={"Authorization": "Bearer sse-1"}), mode="legacy") as mcp:  # type: ignore[arg-type]
            names = {tool.name for tool in (await mcp.list_tools()).tools}
            result = await mcp.call_tool("whoami", {})
    assert "get_item" in names and not any("sse" in name for name in names)
    assert json.loads(result.content[0].text)["authorization"] == "Bearer sse-1"  # type: ignore[union-attr]


def test_legacy_sse_transport_refuses_a_foreign_host() -> None:
    app, _ = build_app()
    MCPBridge(app).mount_sse("/sse")
    with serve_asgi(app) as server:
        with httpx.stream("GET", server.url + "/sse", headers={"host": "evil.example.com"}, timeout=10) as response:
            status = response.status_code
    assert status == 421

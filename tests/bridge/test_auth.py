"""`MCPBridge(app, auth=shim)`: bearer challenges, token checks, per-tool scopes, hidden tools."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import Calls, build_app
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class Protected:
    url: str
    issuer: TokenIssuer
    calls: Calls
    app: FastAPI

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"

    def token(self, *scopes: str, **claims: Any) -> str:
        return self.issuer.token(audience=self.mcp, scopes=scopes, **claims)


@contextlib.contextmanager
def protected(
    *, stateless: bool = True, fast_path: bool = True, hide_unreachable_tools: bool = False, **mount: Any
) -> Iterator[Protected]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    app, calls = build_app()
    shim = issuer.shim(url, scopes_supported=["reports:read", "reports:write"])
    bridge = MCPBridge(app, auth=shim, fast_path=fast_path, hide_unreachable_tools=hide_unreachable_tools)
    bridge.mount_http("/mcp", stateless=stateless, **mount)
    with serve_asgi(app, sock) as running:
        yield Protected(running.url, issuer, calls, app)


def rpc(server: Protected, body: dict[str, Any], token: str | None, **headers: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.mcp, json=body, headers={**ACCEPT, **auth, **headers}, timeout=10)


def result_of(response: httpx.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])["result"]
    return response.json()["result"]


def call(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}


LIST = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}


@pytest.fixture(scope="module")
def server() -> Iterator[Protected]:
    with protected() as running:
        yield running


def _challenge(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


def test_no_token_gets_401_with_resource_metadata(server: Protected) -> None:
    response = rpc(server, INIT, None)
    assert response.status_code == 401
    challenge = _challenge(response)
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{server.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'scope="reports:read reports:write"' in challenge


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"audience": "https://other.example/mcp"}, id="wrong-audience"),
        pytest.param({"issuer": "https://evil.idp"}, id="wrong-issuer"),
        pytest.param({"lifetime": -3600}, id="expired"),
    ],
)
def test_foreign_or_stale_token_gets_401_invalid_token(server: Protected, claims: dict[str, Any]) -> None:
    audience = claims.pop("audience", server.mcp)
    token = server.issuer.token(audience=audience, **claims)
    response = rpc(server, INIT, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in _challenge(response)


def test_token_from_another_key_gets_401(server: Protected) -> None:
    forged = TokenIssuer().token(audience=server.mcp)
    assert rpc(server, INIT, forged).status_code == 401


def test_valid_token_initializes(server: Protected) -> None:
    assert rpc(server, INIT, server.token()).status_code == 200


def test_shim_metadata_is_served_where_the_endpoint_is(server: Protected) -> None:
    prm = httpx.get(server.url + "/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == server.mcp
    assert prm["authorization_servers"] == [server.url]
    as_meta = httpx.get(server.url + "/.well-known/oauth-authorization-server").json()
    assert as_meta["issuer"] == server.url


def test_route_sees_the_forwarded_bearer(server: Protected) -> None:
    token = server.token()
    result = result_of(rpc(server, call("whoami"), token))
    assert json.loads(result["content"][0]["text"])["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize(
    ("tool", "granted", "challenge_scopes"),
    [
        ("read_reports", (), "reports:read"),
        ("write_report", ("reports:read",), "reports:read reports:write"),
        ("write_report", ("reports:read", "profile"), "profile reports:read reports:write"),
    ],
)
def test_tool_needing_more_scopes_gets_403_step_up(
    server: Protected, tool: str, granted: tuple[str, ...], challenge_scopes: str
) -> None:
    response = rpc(server, call(tool), server.token(*granted))
    assert response.status_code == 403
    challenge = _challenge(response)
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{challenge_scopes}"' in challenge
    assert f'resource_metadata="{server.url}/.well-known/oauth-protected-resource/mcp"' in challenge


@pytest.mark.parametrize(
    ("tool", "granted"),
    [("read_reports", ("reports:read",)), ("write_report", ("reports:read", "reports:write"))],
)
def test_tool_with_its_scopes_runs(server: Protected, tool: str, granted: tuple[str, ...]) -> None:
    response = rpc(server, call(tool), server.token(*granted))
    assert response.status_code == 200
    assert result_of(response)["isError"] is False


def test_scope_check_covers_batched_calls(server: Protected) -> None:
    response = httpx.post(
        server.mcp,
        json=[call("text"), call("read_reports")],
        headers={**ACCEPT, "authorization": f"Bearer {server.token()}"},
    )
    assert response.status_code == 403


def test_tools_without_scopes_run_for_any_valid_token(server: Protected) -> None:
    assert result_of(rpc(server, call("text"), server.token()))["content"][0]["text"] == "plain words"


def test_all_tools_listed_by_default(server: Protected) -> None:
    names = {t["name"] for t in result_of(rpc(server, LIST, server.token()))["tools"]}
    assert {"read_reports", "write_report"} <= names


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(
    ("granted", "visible"),
    [
        ((), set()),
        (("reports:read",), {"read_reports"}),
        (("reports:read", "reports:write"), {"read_reports", "write_report"}),
    ],
)
def test_unreachable_tools_can_be_hidden(fast_path: bool, granted: tuple[str, ...], visible: set[str]) -> None:
    with protected(fast_path=fast_path, hide_unreachable_tools=True) as server:
        names = {t["name"] for t in result_of(rpc(server, LIST, server.token(*granted)))["tools"]}
    assert names & {"read_reports", "write_report"} == visible
    assert "text" in names


@pytest.mark.parametrize("fast_path", [True, False])
def test_session_is_bound_to_the_token_owner(fast_path: bool) -> None:
    with protected(stateless=False, fast_path=fast_path) as server:
        owner = server.token(subject="alice")
        opened = rpc(server, INIT, owner)
        session = opened.headers["mcp-session-id"]
        headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        rpc(server, {"jsonrpc": "2.0", "method": "notifications/initialized"}, owner, **headers)
        mine = rpc(server, LIST, owner, **headers)
        theirs = rpc(server, LIST, server.token(subject="mallory"), **headers)
    assert (mine.status_code, theirs.status_code) == (200, 404)


def test_legacy_sse_transport_is_protected_and_checks_tool_scopes() -> None:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    app, _ = build_app()
    MCPBridge(app, auth=issuer.shim(url)).mount_sse("/sse")
    token = issuer.token(audience=url + "/mcp")
    with serve_asgi(app, sock):
        anonymous = httpx.get(url + "/sse", timeout=10)
        auth = {"authorization": f"Bearer {token}"}
        with httpx.stream("GET", url + "/sse", headers=auth, timeout=10) as stream:
            lines = stream.iter_lines()
            endpoint = next(line[5:].strip() for line in lines if line.startswith("data:"))
            refused = httpx.post(url + endpoint, json=call("read_reports"), headers=auth, timeout=10)
            accepted = httpx.post(url + endpoint, json=INIT, headers=auth, timeout=10)
    assert anonymous.status_code == 401
    assert refused.status_code == 403 and 'error="insufficient_scope"' in _challenge(refused)
    assert accepted.status_code == 202


@pytest.mark.parametrize("host_kind", ["another app", "an unprefixed router included afterwards"])
def test_auth_routes_go_where_the_endpoint_is_mounted(host_kind: str) -> None:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    source, calls = build_app()
    bridge = MCPBridge(source, auth=issuer.shim(url))
    host = FastAPI()
    if host_kind == "another app":
        bridge.mount_http("/mcp", router=host, stateless=True)
    else:
        router = APIRouter()
        bridge.mount_http("/mcp", router=router, stateless=True)
        host.include_router(router)
    token = issuer.token(audience=url + "/mcp")
    with serve_asgi(host, sock):
        prm = httpx.get(url + "/.well-known/oauth-protected-resource/mcp")
        metadata = httpx.get(url + "/.well-known/oauth-authorization-server")
        anonymous = rpc(Protected(url, issuer, calls, host), INIT, None)
        result = result_of(rpc(Protected(url, issuer, calls, host), call("whoami"), token))
    assert prm.status_code == 200 and prm.json()["resource"] == url + "/mcp"
    assert metadata.status_code == 200 and metadata.json()["issuer"] == url
    assert anonymous.status_code == 401
    assert f'resource_metadata="{url}/.well-known/oauth-protected-resource/mcp"' in _challenge(anonymous)
    assert json.loads(result["content"][0]["text"])["authorization"] == f"Bearer {token}"
    assert not any(getattr(r, "path", "").startswith("/.well-known") for r in source.routes)


def test_auth_on_a_prefixed_router_is_refused_when_mounted() -> None:
    from mcp_oauth_shim.config import ConfigurationError

    source, _ = build_app()
    bridge = MCPBridge(source, auth=TokenIssuer().shim("http://127.0.0.1:8000"))
    with pytest.raises(ConfigurationError, match="'/agents'"):
        bridge.mount_http("/mcp", router=APIRouter(prefix="/agents"))


@pytest.mark.parametrize("scope", ["read notes", 'say"hi', "back\\slash"])
def test_a_route_declaring_a_scope_no_token_can_carry_is_refused_when_the_bridge_is_built(scope: str) -> None:
    from fastapi import Security

    from mcp_oauth_shim import ConfigurationError
    from tests.bridge.sample_app import scoped

    app = FastAPI()

    @app.get("/notes", operation_id="read_notes")
    def read_notes(granted: list[str] = Security(scoped, scopes=[scope])) -> list[str]:
        return granted

    shim = TokenIssuer().shim("http://127.0.0.1:8000")
    with pytest.raises(ConfigurationError, match="read_notes") as refused:
        MCPBridge(app, auth=shim)
    assert repr(scope) in str(refused.value)


def test_without_auth_declared_scopes_are_not_checked() -> None:
    from fastapi import Security

    from tests.bridge.sample_app import scoped

    app = FastAPI()

    @app.get("/notes", operation_id="read_notes")
    def read_notes(granted: list[str] = Security(scoped, scopes=["read notes"])) -> list[str]:
        return granted

    assert [tool.name for tool in MCPBridge(app).tools] == ["read_notes"]

"""The bridge's ``/mcp`` endpoint behind the shim: MCP JSON-RPC (initialize, tools/list,
tools/call with arbitrary arguments, anything else), ``Authorization`` garbage, and odd
``Content-Type``, ``Accept``, ``Origin``, ``Host`` and session headers.

Properties: without a valid token, an RFC 6750 §3 challenge and no tool runs; with one, never a
5xx other than 502/503/504 JSON; a tool call runs its own operation's route or none (never a
literal route a path argument happens to spell); a planted bearer token is never echoed or
logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given
from joserfc import jwt
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import Calls, build_app
from tests.bridge.token_issuer import TokenIssuer

from .properties import assert_bearer_challenge, assert_no_server_error, assert_nothing_leaks, captured_logs
from .strategies import FUZZ, header_values, hostile_text, planted, wire

PUBLIC_URL = "http://127.0.0.1:8000"
MCP = PUBLIC_URL + "/mcp"
ACCEPT = "application/json, text/event-stream"
VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]


@dataclass
class Bridge:
    client: TestClient
    issuer: TokenIssuer
    calls: Calls
    tools: dict[str, dict[str, Any]]

    def token(self, *scopes: str) -> str:
        return self.issuer.token(audience=MCP, scopes=scopes)


@pytest.fixture(scope="module")
def bridge() -> Iterator[Bridge]:
    issuer = TokenIssuer()
    app, calls = build_app()
    shim = issuer.shim(PUBLIC_URL, scopes_supported=["reports:read", "reports:write"])
    MCPBridge(app, auth=shim).mount_http("/mcp", stateless=True)
    with TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False) as client:
        token = issuer.token(audience=MCP, scopes=("reports:read", "reports:write"))
        listed = client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": ACCEPT, "authorization": f"Bearer {token}", "mcp-protocol-version": "2025-11-25"},
        )
        assert listed.status_code == 200, listed.text
        tools = {tool["name"]: tool for tool in _result(listed)["tools"]}
        yield Bridge(client, issuer, calls, tools)


def _result(response: Any) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])["result"]
    return response.json()["result"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def jsonrpc_messages(draw: st.DrawFn, tools: list[str]) -> object:
    """JSON-RPC messages of every MCP method the bridge answers, and some it does not."""
    method = draw(st.one_of(st.sampled_from(["initialize", "tools/list", "tools/call", "ping", "notifications/initialized", "resources/list", "prompts/get"]), hostile_text))
    params: object
    if method == "initialize":
        params = {"protocolVersion": draw(st.one_of(st.sampled_from(VERSIONS), hostile_text)), "capabilities": draw(st.one_of(st.just({}), json_values)), "clientInfo": draw(st.one_of(st.just({"name": "f", "version": "1"}), json_values))}
    elif method == "tools/call":
        params = {"name": draw(st.one_of(st.sampled_from(tools), hostile_text)), "arguments": draw(st.one_of(st.dictionaries(hostile_text, json_values, max_size=3), json_values))}
    else:
        params = draw(st.one_of(st.just({}), json_values))
    message: dict[str, object] = {"jsonrpc": draw(st.one_of(st.just("2.0"), json_values)), "method": method}
    if draw(st.integers(0, 4)):
        message["id"] = draw(st.one_of(st.integers(), hostile_text, json_values))
    if draw(st.integers(0, 4)):
        message["params"] = params
    if draw(st.integers(0, 9)) == 0:
        return [message, draw(json_values)]  # a batch (removed in 2025-06-18)
    return message


@st.composite
def mcp_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {
        "content-type": draw(st.one_of(st.just("application/json"), st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", ""]), header_values)),
        "accept": draw(st.one_of(st.just(ACCEPT), st.sampled_from(["application/json", "text/event-stream", "*/*", ""]), header_values)),
    }
    for name in draw(st.lists(st.sampled_from(["mcp-protocol-version", "mcp-session-id", "origin", "host", "last-event-id", "cookie"]), unique=True, max_size=3)):
        headers[name] = draw(st.one_of(st.sampled_from([*VERSIONS, "https://evil.example", "evil.example", "127.0.0.1:8000", "__Host-x=1"]), header_values))
    return headers


@st.composite
def mcp_bodies(draw: st.DrawFn, tools: list[str]) -> bytes:
    kind = draw(st.sampled_from(["message", "message", "message", "json", "bytes"]))
    if kind == "message":
        return json.dumps(draw(jsonrpc_messages(tools))).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=200))


def _id_token(issuer: TokenIssuer) -> str:
    """An OpenID Connect ID token from the right issuer (OIDC Core §2): typ JWT, the shim's
    upstream client as audience and authorized party, a nonce and at_hash; the resource is
    named too, as IdPs that add extra audiences do. It proves a login, not API access."""
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "sub": "user-1",
        "aud": ["upstream-client", MCP],
        "azp": "upstream-client",
        "iat": now,
        "exp": now + 600,
        "auth_time": now,
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
    }
    return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "JWT"}, claims, issuer.key)


@st.composite
def bad_credentials(draw: st.DrawFn, issuer: TokenIssuer) -> tuple[str | None, list[str]]:
    """An Authorization header that must not open the endpoint, and what it plants."""
    secret = draw(planted)
    kind = draw(st.sampled_from(["none", "planted", "forged", "foreign", "expired", "id_token", "basic", "hostile", "empty"]))
    if kind == "none":
        return None, []
    if kind == "planted":
        return f"Bearer {secret}", [secret]
    if kind == "forged":
        forged = TokenIssuer().token(audience=MCP)
        return f"Bearer {forged}", [forged]
    if kind == "foreign":
        foreign = issuer.token(audience="https://other.example/mcp")
        return f"Bearer {foreign}", [foreign]
    if kind == "expired":
        expired = issuer.token(audience=MCP, lifetime=-3600)
        return f"Bearer {expired}", [expired]
    if kind == "id_token":
        id_token = _id_token(issuer)
        return f"Bearer {id_token}", [id_token]
    if kind == "basic":
        return f"Basic {secret}", [secret]
    if kind == "empty":
        return "Bearer ", []
    return draw(header_values) or None, []


@FUZZ
@given(data=st.data())
def test_mcp_without_a_valid_token_gets_a_bearer_challenge_and_runs_nothing(bridge: Bridge, data: st.DataObject) -> None:
    authorization, secrets = data.draw(bad_credentials(bridge.issuer))
    headers = data.draw(mcp_headers())
    if authorization is not None:
        headers["authorization"] = authorization
    body = data.draw(mcp_bodies(list(bridge.tools)))
    seen = len(bridge.calls.seen)
    with captured_logs(PUBLIC_URL) as logs:
        response = bridge.client.post("/mcp", content=body, headers=wire(headers))
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert response.status_code in (400, 401, 403), (response.status_code, response.text[:300])
    if response.status_code in (401, 403):
        assert_bearer_challenge(response)
    assert len(bridge.calls.seen) == seen
    assert_nothing_leaks(response, logs, secrets)


@FUZZ
@given(data=st.data())
def test_mcp_with_a_valid_token_never_answers_a_server_error(bridge: Bridge, data: st.DataObject) -> None:
    headers = data.draw(mcp_headers())
    headers["authorization"] = f"Bearer {bridge.token('reports:read', 'reports:write')}"
    body = data.draw(mcp_bodies(list(bridge.tools)))
    response = bridge.client.post("/mcp", content=body, headers=wire(headers))
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    if response.status_code >= 500:
        assert isinstance(response.json(), dict)


@st.composite
def tool_arguments(draw: st.DrawFn, tool: dict[str, Any]) -> dict[str, object]:
    """Arguments for ``tool``: its own parameters with any values (path parameters that spell
    other routes among them), plus unknown ones."""
    properties = tool.get("inputSchema", {}).get("properties", {})
    spelled = st.sampled_from(["admin", "1/admin", "../items/admin", "1%2Fadmin", "%2e%2e/items/admin", "1?x=1", "1#f", "", "/", "items/admin"])
    arguments: dict[str, object] = {}
    for name in draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []:
        arguments[name] = draw(st.one_of(spelled, json_values))
    arguments.update(draw(st.dictionaries(hostile_text, json_values, max_size=2)))
    return arguments


@FUZZ
@given(data=st.data())
def test_a_tool_call_runs_its_own_route_or_none(bridge: Bridge, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(bridge.tools)))
    arguments = data.draw(tool_arguments(bridge.tools[name]))
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    seen = len(bridge.calls.seen)
    response = bridge.client.post(
        "/mcp",
        content=json.dumps(message).encode(),
        headers={
            "content-type": "application/json",
            "accept": ACCEPT,
            "mcp-protocol-version": "2025-11-25",
            "authorization": f"Bearer {bridge.token('reports:read', 'reports:write')}",
        },
    )
    event(f"status {response.status_code}")
    assert response.status_code == 200, (response.status_code, response.text[:300])
    routes = [call["route"] for call in bridge.calls.seen[seen:]]
    assert set(routes) <= {name}, (name, arguments, routes)


@FUZZ
@given(data=st.data())
def test_mcp_refuses_an_id_token_as_an_access_token(bridge: Bridge, data: st.DataObject) -> None:
    """An ID token is addressed to the client that logged in, not to the API, even when its
    audience also names the resource (OIDC Core §2, RFC 9068 §4): 401 invalid_token."""
    headers = data.draw(mcp_headers())
    headers.update({"authorization": f"Bearer {_id_token(bridge.issuer)}", "content-type": "application/json", "accept": ACCEPT})
    body = json.dumps(data.draw(jsonrpc_messages(list(bridge.tools)))).encode()
    seen = len(bridge.calls.seen)
    response = bridge.client.post("/mcp", content=body, headers=wire(headers))
    assert response.status_code == 401, (response.status_code, response.text[:200])
    assert assert_bearer_challenge(response).get("error") == "invalid_token"
    assert len(bridge.calls.seen) == seen

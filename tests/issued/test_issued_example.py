"""examples/issued_tokens_github.py against the GitHub stand-in: a login through the shim,
then the tools see the GitHub user and call GitHub's API with the token the shim carries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.peers.github_fake import FakeGitHub
from tests.shim.kit import Kit
from tests.test_examples import MCP_HEADERS, load

PUBLIC_URL = "http://127.0.0.1:8000"
GITHUB_BASE = "http://127.0.0.1:9400"


def mcp_tool(client: TestClient, token: str, name: str) -> Any:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    init = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    })
    assert init.status_code == 200, init.text
    headers |= {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}},
    })
    assert call.status_code == 200, call.text
    messages = [json.loads(line[5:]) for line in call.text.splitlines() if line.startswith("data:")]
    return next(m["result"] for m in messages if m.get("id") == 2)


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(SystemExit, match="MCP_OAUTH_SHIM_CLIENT_SECRET"):
        load("issued_tokens_github").shim_from_env({"MCP_OAUTH_SHIM_CLIENT_ID": "x", "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48})


def test_the_github_example_signs_in_and_its_tools_see_the_user() -> None:
    example = load("issued_tokens_github")
    github = FakeGitHub(callback_url=PUBLIC_URL + "/oauth/callback", base_url=GITHUB_BASE)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=github.app), base_url=GITHUB_BASE)
    env = {
        "MCP_OAUTH_SHIM_CLIENT_ID": github.client_id,
        "MCP_OAUTH_SHIM_CLIENT_SECRET": github.client_secret,
        "MCP_OAUTH_SHIM_SECRET_KEYS": "an-example-key-for-the-tests-0123456789abcdef",
    }
    shim = example.shim_from_env(env, http_client=http, **github.upstream_options())
    with TestClient(example.build_app(shim, example.create_mcp()), base_url=PUBLIC_URL) as client:
        kit = Kit(idp=github, shim=shim, client=client, idp_client=TestClient(github.app, base_url=GITHUB_BASE))  # type: ignore[arg-type]
        login = kit.login()
        answer = kit.exchange(login)
        assert answer.status_code == 200, answer.text
        result = mcp_tool(client, answer.json()["access_token"], "whoami")
    user = json.loads(result["content"][0]["text"])
    assert user["id"] == str(github.user.id) and user["login"] == github.user.login

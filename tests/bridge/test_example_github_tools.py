"""examples/bridge_github_tools.py runs as documented: its tools see the GitHub user and call
GitHub's API with the user's GitHub token carried (encrypted) in the shim's access token.

GitHub cannot be reached from the tests: its OAuth endpoints and REST API are the loopback fake
of tests/peers/github_fake.py, whose `/user` accepts only the tokens it issued. The shim's
access tokens are minted by the shim's own `TokenIssuer`, as its token endpoint does after a
GitHub sign-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_oauth_shim import OAuthShim, Upstream
from tests.bridge.test_examples import load, session
from tests.peers.github_fake import FakeGitHub, run_github_fake
from tests.peers.servers import bind_loopback, serve_asgi

SECRET_KEYS = ["a-test-key-that-is-long-enough-for-signing-things-0123456789"]


def github_user_token(github: FakeGitHub) -> str:
    """A `gho_` token from the fake's own authorization code flow (what the shim's callback gets)."""
    authorize = httpx.get(github.authorization_endpoint, params={"client_id": github.client_id, "scope": "read:user"})
    code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
    answer = httpx.post(
        github.token_endpoint,
        data={"client_id": github.client_id, "client_secret": github.client_secret, "code": code},
        headers={"accept": "application/json"},
    )
    return str(answer.json()["access_token"])


class Running:
    def __init__(self, url: str, shim: OAuthShim, github: FakeGitHub) -> None:
        self.url, self.shim, self.github = url, shim, github

    def token(self, *, carry_github_token: bool = True) -> str:
        issued = self.shim.context.issued
        assert issued is not None
        user = self.github.user
        return issued.tokens.access_token(
            client_id="mcp-client-1",
            subject=str(user.id),
            scopes="read:user",
            identity_claims={"name": user.name, "preferred_username": user.login, "email": user.email},
            upstream_access_token=github_user_token(self.github) if carry_github_token else None,
        )


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with run_github_fake() as (github, _):
        sock = bind_loopback()
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        upstream = Upstream.github(github.client_id, github.client_secret, **github.upstream_options())
        shim = OAuthShim(public_url=url, upstream=upstream, secret_keys=SECRET_KEYS)
        with serve_asgi(load("bridge_github_tools").build_app(shim), sock):
            yield Running(url, shim, github)


@pytest.mark.anyio
async def test_github_example_tools_know_the_user_and_call_github_as_them(running: Running) -> None:
    async with session(running.url + "/mcp", running.token()) as mcp:
        me = await mcp.call_tool("whoami", {})
        profile = await mcp.call_tool("github_profile", {})
    assert not me.is_error and not profile.is_error, (me, profile)
    assert json.loads(me.content[0].text) == {  # type: ignore[union-attr]
        "github_id": "583231",
        "login": "octocat",
        "name": "The Octocat",
        "email": "octocat@github.com",
        "client_id": "mcp-client-1",
    }
    assert json.loads(profile.content[0].text)["login"] == "octocat"  # type: ignore[union-attr]


def test_github_example_profile_route_works_over_plain_http(running: Running) -> None:
    response = httpx.get(running.url + "/github/profile", headers={"authorization": f"Bearer {running.token()}"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["login"] == "octocat" and body["html_url"] == "https://github.com/octocat"


def test_github_example_profile_without_a_carried_github_token_is_refused_before_github(running: Running) -> None:
    token = running.token(carry_github_token=False)
    response = httpx.get(running.url + "/github/profile", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert token not in response.text


# -- the whole way: a sign-in through the shim at GitHub, then the tools -------------------------


def _tool_text(client: Any, token: str, name: str) -> str:
    """initialize, notifications/initialized, tools/call over the example's /mcp."""
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
    init = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    })
    assert init.status_code == 200, init.text
    if "mcp-session-id" in init.headers:
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
    headers["mcp-protocol-version"] = "2025-11-25"
    client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}},
    })
    assert call.status_code == 200, call.text
    if call.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in call.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        result = json.loads(data[-1])["result"]
    else:
        result = call.json()["result"]
    assert not result.get("isError"), result
    return str(result["content"][0]["text"])


def test_github_example_after_a_sign_in_through_the_shim_calls_github_as_the_user() -> None:
    from starlette.testclient import TestClient

    from tests.shim.kit import PUBLIC_URL, Kit

    with run_github_fake() as (github, _):
        github.callback_url = PUBLIC_URL + "/oauth/callback"
        upstream = Upstream.github(github.client_id, github.client_secret, **github.upstream_options())
        shim = OAuthShim(public_url=PUBLIC_URL, upstream=upstream, secret_keys=SECRET_KEYS)
        app = load("bridge_github_tools").build_app(shim)
        with TestClient(app, base_url=PUBLIC_URL) as client:
            kit = Kit(idp=github, shim=shim, client=client, idp_client=TestClient(github.app, base_url=github.base_url))  # type: ignore[arg-type]
            answer = kit.exchange(kit.login())
            assert answer.status_code == 200, answer.text
            access_token = answer.json()["access_token"]
            (github_token,) = github._tokens
            assert github_token not in answer.text  # the client never sees GitHub's token
            me = json.loads(_tool_text(client, access_token, "whoami"))
            profile = json.loads(_tool_text(client, access_token, "github_profile"))
    assert (me["github_id"], me["login"]) == (str(github.user.id), github.user.login)
    assert profile["login"] == github.user.login

"""`verified_caller(shim)` and `upstream_token(shim)`: a route learns who calls and gets the IdP
token, whether the call came as an MCP tool call through the bridge or as plain HTTP.

Passthrough mode here: the tokens are the (test) IdP's own JWTs, verified by the shim's real
verifier against the IdP's JWKS served in-process; the MCP side is the real SDK client talking
to the bridge on a loopback uvicorn.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge, upstream_token, verified_caller
from mcp_oauth_shim import Caller, OAuthShim
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

IDENTITY = {"name": "Ada Lovelace", "email": "ada@example.test", "preferred_username": "ada"}


def build_app(shim: OAuthShim) -> FastAPI:
    """Three routes: who am I, a scoped route, and one that would call the IdP's API."""
    app = FastAPI()
    caller = verified_caller(shim)
    idp_token = upstream_token(shim)

    @app.get("/me", operation_id="whoami")
    def me(user: Caller = Security(caller)) -> dict[str, Any]:
        return {
            "subject": user.subject,
            "name": user.name,
            "email": user.email,
            "username": user.username,
            "scopes": list(user.scopes),
            "client_id": user.client_id,
            "issued_by_shim": user.issued_by_shim,
        }

    @app.get("/notes", operation_id="list_notes")
    def notes(user: Caller = Security(caller, scopes=["notes:read"])) -> dict[str, Any]:
        return {"owner": user.subject}

    @app.get("/idp-token", operation_id="idp_token")
    def idp(token: str = Security(idp_token)) -> dict[str, str]:
        # A real tool would call the IdP's API with it; the test checks which token arrived.
        return {"token": token}

    return app


@dataclass
class Served:
    url: str
    issuer: TokenIssuer

    def token(self, *scopes: str, subject: str = "user-1", claims: dict[str, Any] | None = None) -> str:
        return self.issuer.token(audience=self.url + "/mcp", scopes=scopes, subject=subject, extra_claims=claims)


@contextlib.contextmanager
def served(*, stateless: bool = True, fast_path: bool = True) -> Iterator[Served]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    shim = issuer.shim(url)
    app = build_app(shim)
    MCPBridge(app, auth=shim, fast_path=fast_path).mount_http("/mcp", stateless=stateless)
    with serve_asgi(app, sock) as running:
        yield Served(running.url, issuer)


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url + "/mcp", http_client=http)) as client:  # type: ignore[arg-type]
        yield client


async def tool_answer(server: Served, token: str, name: str) -> dict[str, Any]:
    async with mcp_client(server.url, token) as client:
        result = await client.call_tool(name, {})
    assert not result.is_error, result
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served() as running:
        yield running


# -- through the bridge: the MCP client's token reaches the route, which gets the identity ------


MODES = {
    "stateless-fast-path": {"stateless": True, "fast_path": True},
    "stateful-fast-path": {"stateless": False, "fast_path": True},
    "stateful-sdk-path": {"stateless": False, "fast_path": False},
}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
async def test_a_tool_call_through_the_bridge_gives_the_route_the_callers_identity(mode: dict[str, bool]) -> None:
    with served(**mode) as server:
        answer = await tool_answer(server, server.token("notes:read", subject="ada-1", claims=IDENTITY), "whoami")
    assert answer == {
        "subject": "ada-1",
        "name": "Ada Lovelace",
        "email": "ada@example.test",
        "username": "ada",
        "scopes": ["notes:read"],
        "client_id": "upstream-client",
        "issued_by_shim": False,
    }


@pytest.mark.anyio
async def test_a_scoped_route_called_as_a_tool_sees_the_caller(server: Served) -> None:
    answer = await tool_answer(server, server.token("notes:read", subject="bob-2"), "list_notes")
    assert answer == {"owner": "bob-2"}


@pytest.mark.anyio
async def test_in_passthrough_the_upstream_token_of_a_tool_call_is_the_bearer_token(server: Served) -> None:
    token = server.token(subject="carol-3")
    assert await tool_answer(server, token, "idp_token") == {"token": token}


def test_a_tool_call_without_the_routes_scope_is_refused_with_a_step_up_challenge(server: Served) -> None:
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "list_notes", "arguments": {}}}
    response = httpx.post(
        server.url + "/mcp",
        json=call,
        headers={
            "authorization": f"Bearer {server.token('other')}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2025-11-25",
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "notes:read" in response.headers["www-authenticate"]


# -- plain HTTP: the same dependencies on the same routes ---------------------------------------


def test_a_plain_http_call_gives_the_route_the_callers_identity(server: Served) -> None:
    token = server.token("notes:read", subject="dave-4", claims=IDENTITY)
    response = httpx.get(server.url + "/me", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["subject"] == "dave-4"
    assert response.json()["email"] == "ada@example.test"


def test_identity_claims_the_token_does_not_carry_are_none(server: Served) -> None:
    response = httpx.get(server.url + "/me", headers={"authorization": f"Bearer {server.token()}"}, timeout=10)
    assert {k: response.json()[k] for k in ("name", "email", "username")} == {"name": None, "email": None, "username": None}


@pytest.mark.parametrize(
    "claims",
    [{"name": 7, "email": ["a@b"], "preferred_username": {"x": 1}}, {"name": "", "email": "", "preferred_username": ""}],
    ids=["not-strings", "empty-strings"],
)
def test_malformed_identity_claims_are_none_not_an_error(server: Served, claims: dict[str, Any]) -> None:
    response = httpx.get(server.url + "/me", headers={"authorization": f"Bearer {server.token(claims=claims)}"}, timeout=10)
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("name", "email", "username")} == {"name": None, "email": None, "username": None}


def test_in_passthrough_the_upstream_token_of_a_plain_call_is_the_bearer_token(server: Served) -> None:
    token = server.token()
    response = httpx.get(server.url + "/idp-token", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.json() == {"token": token}


# -- refusals (RFC 6750 §3): the same as the MCP endpoint's, and nothing secret in them -----------


def _refusal_cases(token_of: TokenIssuer, url: str) -> dict[str, tuple[str, list[tuple[str, str]], int, str | None]]:
    aud = url + "/mcp"
    return {
        "me-no-credentials": ("/me", [], 401, None),
        "me-basic-credentials": ("/me", [("authorization", "Basic dXNlcjpwYXNz")], 401, None),
        "me-not-a-jwt": ("/me", [("authorization", "Bearer not-a-token")], 401, "invalid_token"),
        "me-expired": ("/me", [("authorization", f"Bearer {token_of.token(audience=aud, lifetime=-120)}")], 401, "invalid_token"),
        "me-other-audience": ("/me", [("authorization", f"Bearer {token_of.token(audience='https://other.test/mcp')}")], 401, "invalid_token"),
        "me-two-headers": ("/me", [("authorization", "Bearer a"), ("authorization", "Bearer b")], 400, "invalid_request"),
        "notes-scope-missing": ("/notes", [("authorization", f"Bearer {token_of.token(audience=aud, scopes=('other',))}")], 403, "insufficient_scope"),
        "idp-token-no-credentials": ("/idp-token", [], 401, None),
        "idp-token-expired": ("/idp-token", [("authorization", f"Bearer {token_of.token(audience=aud, lifetime=-120)}")], 401, "invalid_token"),
    }


URL = "http://127.0.0.1:8000"
ISSUER = TokenIssuer()
REFUSALS = _refusal_cases(ISSUER, URL)


@pytest.mark.parametrize(("path", "headers", "status", "error"), REFUSALS.values(), ids=REFUSALS.keys())
def test_routes_refuse_bad_or_missing_tokens_as_the_shim_does(
    path: str, headers: list[tuple[str, str]], status: int, error: str | None
) -> None:
    with TestClient(build_app(ISSUER.shim(URL)), base_url=URL) as client:
        response = client.get(path, headers=httpx.Headers(headers))
    assert response.status_code == status
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{URL}/.well-known/oauth-protected-resource/mcp"' in challenge
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    for _, value in headers:
        credential = value.partition(" ")[2]
        if len(credential) > 8:  # a JWT, the Basic credentials: never echoed
            assert credential not in response.text and credential not in challenge

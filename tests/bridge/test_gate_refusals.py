"""An endpoint guarded by `dependencies=[...]` refuses bad requests exactly as one without:
the shim's `RequireBearer` decides before the dependencies run (same status, challenge, body)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import Depends
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_oauth_shim import OAuthShim, Upstream
from tests.bridge.sample_app import build_app
from tests.bridge.token_issuer import TokenIssuer

URL = "http://127.0.0.1:8000"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]


@dataclass(frozen=True)
class Answer:
    status: int
    challenge: str | None
    body: bytes


def _idp_down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _shim_of_an_unreachable_idp(issuer: TokenIssuer) -> OAuthShim:
    upstream = Upstream.oidc(
        issuer=issuer.issuer, client_id="upstream-client", client_secret="upstream-secret", audience=URL + "/mcp"
    )
    return OAuthShim(
        public_url=URL,
        upstream=upstream,
        secret_keys=["a-test-key-that-is-long-enough-for-signing-things-0123456789"],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(_idp_down)),
    )


def _post(client: TestClient, headers: list[tuple[str, str]]) -> Answer:
    response = client.post("/mcp", json=INIT, headers=httpx.Headers([*ACCEPT, *headers]))
    return Answer(response.status_code, response.headers.get("www-authenticate"), response.content)


@dataclass
class Pair:
    issuer: TokenIssuer
    plain: TestClient
    gated: TestClient
    dependency_runs: list[str]


@pytest.fixture(params=["idp-up", "idp-down"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    issuer = TokenIssuer()
    runs: list[str] = []

    def user_dependency() -> None:
        runs.append("ran")

    clients = []
    for dependencies in ((), (Depends(user_dependency),)):
        app, _ = build_app()
        shim = issuer.shim(URL) if request.param == "idp-up" else _shim_of_an_unreachable_idp(issuer)
        MCPBridge(app, auth=shim, dependencies=list(dependencies)).mount_http("/mcp", stateless=True)
        clients.append(TestClient(app, base_url=URL))
    with clients[0] as plain, clients[1] as gated:
        yield Pair(issuer, plain, gated, runs)


BAD_REQUESTS = {
    "no-credentials": [],
    "another-scheme": [("authorization", "Basic dXNlcjpwdw==")],
    "two-authorization-headers": [("authorization", "Bearer a"), ("authorization", "Bearer b")],
    "not-a-b64token": [("authorization", "Bearer two words")],
    "not-a-jwt": [("authorization", "Bearer not-a-token")],
}


@pytest.mark.parametrize("headers", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_gets_the_same_refusal_with_and_without_dependencies(
    pair: Pair, headers: list[tuple[str, str]]
) -> None:
    plain, gated = _post(pair.plain, headers), _post(pair.gated, headers)
    assert gated == plain
    assert plain.status in (400, 401, 502, 503, 504)
    assert pair.dependency_runs == []


def test_a_signed_token_the_idp_cannot_confirm_gets_the_same_answer(pair: Pair) -> None:
    # Signed by the IdP's key: verifiable while the IdP answers (expired: 401), not when it is down (502).
    token = pair.issuer.token(audience=URL + "/mcp", lifetime=-60)
    headers = [("authorization", f"Bearer {token}")]
    plain, gated = _post(pair.plain, headers), _post(pair.gated, headers)
    assert gated == plain
    assert plain.status in (401, 502, 503, 504)
    assert pair.dependency_runs == []

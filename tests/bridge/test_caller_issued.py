"""Issued-token mode: a route gets the identity the shim wrote into its token and, on request,
the IdP's access token decrypted from it; refusals when there is none or it cannot be opened.

The tokens are minted by the shim's own `TokenIssuer` (what its token endpoint hands out) and
verified by the shim's real issued-token verifier; the MCP side is the real SDK client on a
loopback uvicorn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_oauth_shim import OAuthShim
from tests.bridge.test_caller_dependency import IDENTITY, build_app, tool_answer
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

URL = "http://127.0.0.1:8000"
IDP = TokenIssuer()
GITHUB_TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"  # the shape of a GitHub OAuth token
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def issued_shim(url: str, **options: Any) -> OAuthShim:
    return IDP.shim(url, issue_tokens=True, **options)


def mint(shim: OAuthShim, *scopes: str, subject: str = "u-1", upstream: str | None = GITHUB_TOKEN) -> str:
    """An access token as the shim's token endpoint issues it after a sign-in."""
    issued = shim.context.issued
    assert issued is not None
    return issued.tokens.access_token(
        client_id="mcp-client-1", subject=subject, scopes=scopes, identity_claims=IDENTITY, upstream_access_token=upstream
    )


@dataclass
class Served:
    url: str
    shim: OAuthShim


@contextlib.contextmanager
def served() -> Iterator[Served]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    shim = issued_shim(url)
    app = build_app(shim)
    MCPBridge(app, auth=shim).mount_http("/mcp", stateless=False)
    with serve_asgi(app, sock) as running:
        yield Served(running.url, shim)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served() as running:
        yield running


# -- through the bridge --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_tool_call_with_an_issued_token_gives_the_route_the_identity_the_shim_wrote(server: Served) -> None:
    answer = await tool_answer(server, mint(server.shim, "notes:read", subject="gh-583231"), "whoami")  # type: ignore[arg-type]
    assert answer == {
        "subject": "gh-583231",
        "name": "Ada Lovelace",
        "email": "ada@example.test",
        "username": "ada",
        "scopes": ["notes:read"],
        "client_id": "mcp-client-1",
        "issued_by_shim": True,
    }


@pytest.mark.anyio
async def test_a_tool_call_with_an_issued_token_gets_the_idps_token_decrypted(server: Served) -> None:
    token = mint(server.shim)
    answer = await tool_answer(server, token, "idp_token")  # type: ignore[arg-type]
    assert answer == {"token": GITHUB_TOKEN}
    assert GITHUB_TOKEN not in token  # it travelled encrypted


# -- plain HTTP --------------------------------------------------------------------------------


def test_a_plain_call_with_an_issued_token_gets_the_idps_token_decrypted(server: Served) -> None:
    response = httpx.get(server.url + "/idp-token", headers={"authorization": f"Bearer {mint(server.shim)}"}, timeout=10)
    assert response.json() == {"token": GITHUB_TOKEN}


def test_the_idps_own_token_is_refused_in_issued_mode(server: Served) -> None:
    idp_token = IDP.token(audience=server.url + "/mcp", scopes=("notes:read",))
    response = httpx.get(server.url + "/me", headers={"authorization": f"Bearer {idp_token}"}, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# -- no usable IdP token inside: RFC 6750 refusals, nothing secret in them -----------------------


def _refused_idp_token(client: TestClient, bearer: str) -> httpx.Response:
    response = client.get("/idp-token", headers={"authorization": f"Bearer {bearer}"})
    assert bearer not in response.text and bearer not in response.headers.get("www-authenticate", "")
    assert GITHUB_TOKEN not in response.text
    return response


def test_a_token_that_carries_no_idp_token_is_refused_with_403() -> None:
    shim = issued_shim(URL)
    with TestClient(build_app(shim), base_url=URL) as client:
        response = _refused_idp_token(client, mint(shim, upstream=None))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "carries no access token for the identity provider" in response.json()["detail"]


def test_a_carried_idp_token_the_rotated_keys_cannot_open_is_refused_with_401() -> None:
    # Operator-given signing keys stay; the secret keys (and so the cipher's keys) were replaced.
    before = issued_shim(URL, signing_keys=[SIGNING_KEY], secret_keys=["old-secret-key-0123456789-0123456789-0123456789"])
    after = issued_shim(URL, signing_keys=[SIGNING_KEY], secret_keys=["new-secret-key-0123456789-0123456789-0123456789"])
    with TestClient(build_app(after), base_url=URL) as client:
        assert client.get("/me", headers={"authorization": f"Bearer {mint(before)}"}).status_code == 200
        response = _refused_idp_token(client, mint(before))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "sign in again" in response.json()["detail"]


def test_the_identity_route_still_works_for_a_token_without_an_idp_token() -> None:
    shim = issued_shim(URL)
    with TestClient(build_app(shim), base_url=URL) as client:
        response = client.get("/me", headers={"authorization": f"Bearer {mint(shim, upstream=None)}"})
    assert response.status_code == 200
    assert response.json()["subject"] == "u-1"

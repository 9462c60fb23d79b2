"""Issued-token mode in front of the real oidc-provider in its Google-like form (opaque access
tokens, no introspection, ID tokens): a login through the shim over real HTTP gives the shim's
own RFC 9068 token, which another resource server verifies with PyJWT and the shim's JWKS;
the IdP's own token is refused at the MCP endpoint."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from mcp_oauth_shim import OAuthShim, Upstream
from tests.peers.browser import AuthorizationResponse, follow_login, new_browser_client
from tests.peers.idp import IdP
from tests.shim.kit import pkce_pair

pytestmark = pytest.mark.integration

CLIENT_REDIRECT = "http://127.0.0.1:9/callback"  # nothing listens: the browser stops there
TIMEOUT = httpx.Timeout(20.0)


@dataclass
class IssuedShim:
    url: str
    idp: IdP
    shim: OAuthShim
    idp_token_bodies: list[dict[str, Any]]


@pytest.fixture
def public_url(server_socket: socket.socket) -> str:
    host, port = server_socket.getsockname()[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def issued_shim(start_idp: Callable[..., IdP], public_url: str, serve_app: Callable[..., Any]) -> IssuedShim:
    idp = start_idp(redirect_uris=[public_url + "/oauth/callback"], resources=[], google_like=True)
    bodies: list[dict[str, Any]] = []

    async def record(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/token"):
            await response.aread()
            bodies.append(response.json())

    http = httpx.AsyncClient(timeout=TIMEOUT, event_hooks={"response": [record]})
    # Upstream.google with this IdP's issuer: the preset's parameters and issued-token mode.
    upstream = Upstream.google(idp.client_id, idp.client_secret).replace(issuer=idp.issuer, metadata_url=idp.discovery_url)
    shim = OAuthShim(public_url=public_url, upstream=upstream, secret_keys=[secrets.token_urlsafe(48)], http_client=http)

    async def mcp(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[*shim.routes, Mount("/mcp", shim.protect(Starlette(routes=[Route("/", mcp, methods=["POST"])])))])
    running = serve_app(app)
    return IssuedShim(running.url, idp, shim, bodies)


def sign_in(shim: IssuedShim) -> tuple[str, dict[str, Any]]:
    """An MCP client's part: register, authorize through a browser, redeem the code."""
    with httpx.Client(base_url=shim.url, timeout=TIMEOUT) as client:
        client_id = client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code", "client_id": client_id, "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "s1", "resource": shim.shim.resource,
        }
        with new_browser_client() as browser:
            final = follow_login(shim.url + "/oauth/authorize?" + urlencode(params), CLIENT_REDIRECT, client=browser)
        code = AuthorizationResponse.from_url(final).code
        assert code
        answer = client.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier, "client_id": client_id, "resource": shim.shim.resource,
        })
        assert answer.status_code == 200, answer.text
        return client_id, answer.json()


def test_login_gives_the_shims_token_that_pyjwt_verifies_with_the_published_jwks(issued_shim: IssuedShim) -> None:
    _, body = sign_in(issued_shim)
    metadata = httpx.get(issued_shim.url + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    # A resource server in "another language": PyJWT's JWKS client, the shim's jwks_uri only.
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(body["access_token"])
    claims = jwt.decode(body["access_token"], key.key, algorithms=["ES256"], audience=issued_shim.shim.resource, issuer=metadata["issuer"])
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert claims["sub"] == issued_shim.idp.subject


def test_the_idps_opaque_token_is_refused_and_the_shims_accepted(issued_shim: IssuedShim) -> None:
    _, body = sign_in(issued_shim)
    idp_token = issued_shim.idp_token_bodies[0]["access_token"]
    assert idp_token.count(".") != 2  # the Google-like IdP's tokens are opaque
    refused = httpx.post(issued_shim.url + "/mcp/", headers={"Authorization": "Bearer " + idp_token}, timeout=TIMEOUT)
    accepted = httpx.post(issued_shim.url + "/mcp/", headers={"Authorization": "Bearer " + body["access_token"]}, timeout=TIMEOUT)
    assert (refused.status_code, accepted.status_code) == (401, 200)


def test_refresh_redeems_the_idps_refresh_token_and_rotates(issued_shim: IssuedShim) -> None:
    client_id, body = sign_in(issued_shim)
    answer = httpx.post(issued_shim.url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": client_id,
    }, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["refresh_token"] != body["refresh_token"]
    assert len(issued_shim.idp_token_bodies) == 2  # the IdP was asked: its refresh token was redeemed
    for idp_body in issued_shim.idp_token_bodies:
        for value in (idp_body.get("refresh_token"), idp_body.get("id_token"), idp_body["access_token"]):
            assert value is None or value not in answer.text + str(body)

"""The IdP peer in its Google-like form: what the shim's issued-token mode is built for.

Google's access tokens are opaque, good only at Google's own APIs (userinfo among them), and
its discovery names no introspection endpoint: the shim cannot verify them and must issue
its own. These tests run the peer alone, the test playing the shim's part with the
authorization parameters `Upstream.google` sends, so that later shim tests can rely on it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from mcp_oauth_shim import Upstream
from tests.peers.browser import AuthorizationResponse, follow_login
from tests.peers.idp import IdP

from .test_idp_peer import CALLBACK, TIMEOUT, Pkce, discover, exchange

pytestmark = pytest.mark.integration

GOOGLE = Upstream.google("client", "secret")


@pytest.fixture
def google_like(start_idp: Callable[..., IdP]) -> IdP:
    return start_idp(redirect_uris=[CALLBACK], resources=[], google_like=True)


def login(idp: IdP) -> dict:
    """A code flow with the scopes and parameters of `Upstream.google`, through a
    cookie-keeping client that follows the IdP's redirects; the token response."""
    pkce = Pkce.new()
    params = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": CALLBACK,
        "scope": " ".join(GOOGLE.default_scopes),
        "state": "state-123",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **GOOGLE.extra_authorize_params,
    }
    url = str(httpx.URL(discover(idp)["authorization_endpoint"], params=params))
    response = AuthorizationResponse.from_url(follow_login(url, CALLBACK))
    assert response.code, response
    token = exchange(idp, response.code, pkce)
    assert token.status_code == 200, token.text
    return token.json()


def test_discovery_names_userinfo_but_no_introspection(google_like: IdP) -> None:
    metadata = discover(google_like)
    assert ("introspection_endpoint" in metadata, "userinfo_endpoint" in metadata) == (False, True)


def test_access_token_is_opaque(google_like: IdP) -> None:
    token = login(google_like)["access_token"]
    assert token.count(".") != 2  # not a JWS compact serialization (RFC 7515 §7.1)


def test_login_returns_an_id_token_and_a_refresh_token(google_like: IdP) -> None:
    answer = login(google_like)
    assert (answer["id_token"].count("."), bool(answer.get("refresh_token"))) == (2, True)


def test_userinfo_names_the_user_for_the_opaque_token(google_like: IdP) -> None:
    token = login(google_like)["access_token"]
    userinfo = httpx.get(
        discover(google_like)["userinfo_endpoint"], headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert (userinfo.status_code, userinfo.json()["sub"], userinfo.json()["email"]) == (
        200,
        google_like.subject,
        "tester@example.test",
    )

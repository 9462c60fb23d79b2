"""The IdP peer behaves like the Auth0 tenant the shim is built for.

These run the IdP alone, with the test playing the shim's part (the one confidential client,
RFC 6749 §4.1 + RFC 7636 + RFC 8707), so that a failing client test can be told apart from a
broken peer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.peers.browser import AuthorizationResponse, follow_login
from tests.peers.idp import IdP

pytestmark = pytest.mark.integration

CALLBACK = "http://127.0.0.1:9/oauth/callback"  # nothing listens: the browser stops there
API = "http://127.0.0.1:9/mcp"
TIMEOUT = httpx.Timeout(15.0)


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return cls(verifier, challenge)


def discover(idp: IdP) -> dict:
    response = httpx.get(idp.discovery_url, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def authorize(idp: IdP, pkce: Pkce | None, **extra: str) -> AuthorizationResponse:
    params = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid profile offline_access",
        "state": "state-123",
        **extra,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    final = follow_login(discover(idp)["authorization_endpoint"] + "?" + urlencode(params), CALLBACK)
    return AuthorizationResponse.from_url(final)


def token_request(idp: IdP, form: dict[str, str], auth_method: str | None = None) -> httpx.Response:
    """POST /token authenticated as the static client (RFC 6749 §2.3.1)."""
    method = auth_method or idp.token_endpoint_auth_method
    auth = None
    if method == "client_secret_basic":
        auth = httpx.BasicAuth(idp.client_id, idp.client_secret)
    else:
        form = form | {"client_id": idp.client_id, "client_secret": idp.client_secret}
    return httpx.post(discover(idp)["token_endpoint"], data=form, auth=auth, timeout=TIMEOUT)


def exchange(idp: IdP, code: str, pkce: Pkce, auth_method: str | None = None) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": pkce.verifier}
    return token_request(idp, form, auth_method)


def access_token_claims(idp: IdP, token: str) -> dict:
    keys = KeySet.import_key_set(httpx.get(discover(idp)["jwks_uri"], timeout=TIMEOUT).json())
    return jwt.decode(token, keys, algorithms=["RS256"]).claims


def login(idp: IdP, **extra: str) -> dict:
    """A full authorization-code login; the token response."""
    pkce = Pkce.new()
    response = authorize(idp, pkce, **extra)
    assert response.code, response
    token = exchange(idp, response.code, pkce)
    assert token.status_code == 200, token.text
    return token.json()


@pytest.fixture
def auth0_like(start_idp: Callable[..., IdP]) -> IdP:
    return start_idp(redirect_uris=[CALLBACK], resources=[API], sends_iss=False)


@pytest.mark.parametrize("sends_iss", [True, False], ids=["iss", "no-iss"])
def test_discovery_offers_no_registration_and_only_s256(start_idp: Callable[..., IdP], sends_iss: bool) -> None:
    metadata = discover(start_idp(redirect_uris=[CALLBACK], resources=[API], sends_iss=sends_iss))
    assert "registration_endpoint" not in metadata
    assert metadata["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize("sends_iss", [True, False], ids=["iss", "no-iss"])
def test_iss_support_is_advertised_only_when_sent(start_idp: Callable[..., IdP], sends_iss: bool) -> None:
    metadata = discover(start_idp(redirect_uris=[CALLBACK], resources=[API], sends_iss=sends_iss))
    assert metadata.get("authorization_response_iss_parameter_supported", False) is sends_iss


@pytest.mark.parametrize("sends_iss", [True, False], ids=["iss", "no-iss"])
def test_authorization_response_carries_iss_only_when_configured(
    start_idp: Callable[..., IdP], sends_iss: bool
) -> None:
    idp = start_idp(redirect_uris=[CALLBACK], resources=[API], sends_iss=sends_iss)
    response = authorize(idp, Pkce.new(), resource=API)
    assert (response.code is not None, response.state, response.iss) == (
        True,
        "state-123",
        idp.issuer if sends_iss else None,
    )


@pytest.mark.parametrize("audience_param", ["audience", "resource"])
def test_access_token_is_a_jwt_for_the_requested_api(auth0_like: IdP, audience_param: str) -> None:
    claims = access_token_claims(auth0_like, login(auth0_like, **{audience_param: API})["access_token"])
    assert (claims["iss"], claims["aud"], claims["sub"]) == (auth0_like.issuer, API, auth0_like.subject)


def test_unknown_api_is_an_invalid_target(auth0_like: IdP) -> None:
    response = authorize(auth0_like, Pkce.new(), audience="https://other.example/api")
    assert response.error == "invalid_target"


def test_authorization_without_pkce_is_refused(auth0_like: IdP) -> None:
    response = authorize(auth0_like, None, audience=API)
    assert (response.code, response.error) == (None, "invalid_request")


def test_wrong_code_verifier_is_invalid_grant(auth0_like: IdP) -> None:
    response = authorize(auth0_like, Pkce.new(), audience=API)
    token = exchange(auth0_like, response.code or "", Pkce.new())
    assert (token.status_code, token.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("registered", "used", "status"),
    [
        ("client_secret_post", "client_secret_post", 200),
        ("client_secret_basic", "client_secret_basic", 200),
        ("client_secret_post", "client_secret_basic", 401),
        ("client_secret_basic", "client_secret_post", 401),
    ],
)
def test_token_endpoint_accepts_only_the_registered_client_auth_method(
    start_idp: Callable[..., IdP], registered: str, used: str, status: int
) -> None:
    idp = start_idp(redirect_uris=[CALLBACK], resources=[API], token_endpoint_auth_method=registered)
    pkce = Pkce.new()
    response = authorize(idp, pkce, audience=API)
    assert exchange(idp, response.code or "", pkce, auth_method=used).status_code == status


def test_refresh_grant_returns_a_new_token_for_the_same_api(auth0_like: IdP) -> None:
    first = login(auth0_like, audience=API)
    refreshed = token_request(auth0_like, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    assert token != first["access_token"]
    assert access_token_claims(auth0_like, token)["aud"] == API


def test_redirect_uri_must_match_exactly(auth0_like: IdP) -> None:
    params = {
        "response_type": "code",
        "client_id": auth0_like.client_id,
        "redirect_uri": CALLBACK + "/other",
        "scope": "openid",
        "code_challenge": Pkce.new().challenge,
        "code_challenge_method": "S256",
    }
    response = httpx.get(discover(auth0_like)["authorization_endpoint"], params=params, timeout=TIMEOUT)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_redirect_uri")


def test_signing_key_survives_a_restart(start_idp: Callable[..., IdP]) -> None:
    first = start_idp(redirect_uris=[CALLBACK], resources=[API])
    second = start_idp(redirect_uris=[CALLBACK], resources=[API])
    jwks = [httpx.get(discover(idp)["jwks_uri"], timeout=TIMEOUT).json() for idp in (first, second)]
    assert first.issuer != second.issuer
    assert jwks[0] == jwks[1]

"""The shim's front channel against the real IdP, in both IdP profiles, driven by hand (no MCP
client library) so each check sees the raw redirects."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from tests.peers.browser import AuthorizationResponse, follow_login, new_browser_client
from tests.peers.mcp_under_test import ShimServer
from tests.peers.servers import free_port

pytestmark = pytest.mark.integration

TIMEOUT = httpx.Timeout(15.0)


@dataclass(frozen=True)
class PendingLogin:
    """An authorization request of a freshly registered public client, not yet sent."""

    url: str
    client_id: str
    redirect_uri: str
    code_verifier: str
    metadata: dict


def shim_metadata(server: ShimServer) -> dict:
    return httpx.get(server.public_url + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()


def start_authorization(server: ShimServer) -> PendingLogin:
    """Register a public client at the shim (RFC 7591) and build its authorization request
    (RFC 6749 §4.1.1 with PKCE S256 and the RFC 8707 resource)."""
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    metadata = shim_metadata(server)
    registration = httpx.post(
        metadata["registration_endpoint"],
        json={
            "redirect_uris": [redirect_uri],
            "client_name": "hand-driven test client",
            "token_endpoint_auth_method": "none",
        },
        timeout=TIMEOUT,
    )
    assert registration.status_code == 201, registration.text
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    client_id = registration.json()["client_id"]
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": "client-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": server.mcp_url,
    }
    url = metadata["authorization_endpoint"] + "?" + urlencode(query)
    return PendingLogin(url, client_id, redirect_uri, verifier, metadata)


def shim_token(login: PendingLogin, form: dict[str, str]) -> httpx.Response:
    return httpx.post(login.metadata["token_endpoint"], data={"client_id": login.client_id, **form}, timeout=TIMEOUT)


def complete_login(server: ShimServer) -> tuple[PendingLogin, dict]:
    """A whole login through the shim; the token response."""
    login = start_authorization(server)
    code = AuthorizationResponse.from_url(follow_login(login.url, login.redirect_uri)).code
    assert code, "the login did not reach the client"
    response = shim_token(
        login,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": login.redirect_uri,
            "code_verifier": login.code_verifier,
            "resource": server.mcp_url,
        },
    )
    assert response.status_code == 200, response.text
    return login, response.json()


def test_redirect_to_the_client_carries_the_shim_as_issuer(shim_server: ShimServer) -> None:
    """RFC 9207 §2: `iss` names the server the client talked to, whether the IdP sent one or not."""
    login = start_authorization(shim_server)
    response = AuthorizationResponse.from_url(follow_login(login.url, login.redirect_uri))
    assert (bool(response.code), response.state, response.iss) == (True, "client-state", shim_server.public_url)


@pytest.mark.parametrize(("browser", "honoured"), [("approving", True), ("another", False)])
def test_callback_is_honoured_only_in_the_browser_that_approved(
    shim_server: ShimServer, browser: str, honoured: bool
) -> None:
    """DESIGN.md §6.4: the IdP's redirect back to the shim is bound to the approving browser,
    so a victim cannot be made to finish a login an attacker started."""
    login = start_authorization(shim_server)
    with new_browser_client() as approving, new_browser_client() as other:
        callback = follow_login(login.url, shim_server.public_url + "/oauth/callback", client=approving)
        response = (approving if browser == "approving" else other).get(callback)
    reached_client = response.is_redirect and response.headers["location"].startswith(login.redirect_uri + "?")
    code = AuthorizationResponse.from_url(response.headers["location"]).code if reached_client else None
    assert (reached_client and code is not None) is honoured, (response.status_code, response.text[:300])


@pytest.mark.parametrize("revoked", [False, True], ids=["kept", "revoked"])
def test_refresh_token_works_until_revoked_at_the_shim(shim_server: ShimServer, revoked: bool) -> None:
    """RFC 7009 through the shim: the revocation reaches the IdP (with the upstream client's
    own authentication method), after which the refresh token is dead (RFC 6749 §6)."""
    login, tokens = complete_login(shim_server)
    if revoked:
        answer = httpx.post(
            login.metadata["revocation_endpoint"],
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": login.client_id},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200, answer.text
    refreshed = shim_token(login, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json().get("error")) == ((400, "invalid_grant") if revoked else (200, None))

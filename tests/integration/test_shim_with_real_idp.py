"""The shim's front channel against the real IdP, in both IdP profiles, driven by hand (no MCP
client library) so each check sees the raw redirects."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from tests.peers.browser import AuthorizationResponse, follow_login, new_browser_client
from tests.peers.mcp_under_test import ShimServer
from tests.peers.servers import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class PendingLogin:
    """An authorization request of a freshly registered public client, not yet sent."""

    url: str
    client_id: str
    redirect_uri: str
    code_verifier: str
    metadata: dict


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """The client side: the MCP client's HTTP calls and its user's browser share one jar."""
    with new_browser_client() as client:
        yield client


def shim_metadata(server: ShimServer, http: httpx.Client) -> dict:
    return http.get(server.public_url + "/.well-known/oauth-authorization-server").json()


def start_authorization(server: ShimServer, http: httpx.Client) -> PendingLogin:
    """Register a public client at the shim (RFC 7591) and build its authorization request
    (RFC 6749 §4.1.1 with PKCE S256 and the RFC 8707 resource)."""
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    metadata = shim_metadata(server, http)
    registration = http.post(
        metadata["registration_endpoint"],
        json={
            "redirect_uris": [redirect_uri],
            "client_name": "hand-driven test client",
            "token_endpoint_auth_method": "none",
        },
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


def shim_token(http: httpx.Client, login: PendingLogin, form: dict[str, str]) -> httpx.Response:
    return http.post(login.metadata["token_endpoint"], data={"client_id": login.client_id, **form})


def complete_login(server: ShimServer, http: httpx.Client) -> tuple[PendingLogin, str, dict]:
    """A whole login through the shim; the code the client got and the token response."""
    login = start_authorization(server, http)
    code = AuthorizationResponse.from_url(follow_login(login.url, login.redirect_uri, client=http)).code
    assert code, "the login did not reach the client"
    response = shim_token(
        http,
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
    return login, code, response.json()


def test_redirect_to_the_client_carries_the_shim_as_issuer(shim_server: ShimServer, http: httpx.Client) -> None:
    """RFC 9207 §2: `iss` names the server the client talked to, whether the IdP sent one or not."""
    login = start_authorization(shim_server, http)
    response = AuthorizationResponse.from_url(follow_login(login.url, login.redirect_uri, client=http))
    assert (bool(response.code), response.state, response.iss) == (True, "client-state", shim_server.public_url)


@pytest.mark.parametrize(("browser", "honoured"), [("approving", True), ("another", False)])
def test_callback_is_honoured_only_in_the_browser_that_approved(
    shim_server: ShimServer, http: httpx.Client, browser: str, honoured: bool
) -> None:
    """DESIGN.md §6.4: the IdP's redirect back to the shim is bound to the approving browser,
    so a victim cannot be made to finish a login an attacker started."""
    login = start_authorization(shim_server, http)
    with new_browser_client() as other:
        callback = follow_login(login.url, shim_server.public_url + "/oauth/callback", client=http)
        response = (http if browser == "approving" else other).get(callback)
    reached_client = response.is_redirect and response.headers["location"].startswith(login.redirect_uri + "?")
    code = AuthorizationResponse.from_url(response.headers["location"]).code if reached_client else None
    assert (reached_client and code is not None) is honoured, (response.status_code, response.text[:300])


@pytest.mark.parametrize("revoked", [False, True], ids=["kept", "revoked"])
def test_refresh_token_works_until_revoked_at_the_shim(
    shim_server: ShimServer, http: httpx.Client, revoked: bool
) -> None:
    """RFC 7009 through the shim: the revocation reaches the IdP (with the upstream client's
    own authentication method), after which the refresh token is dead (RFC 6749 §6)."""
    login, _, tokens = complete_login(shim_server, http)
    if revoked:
        answer = http.post(
            login.metadata["revocation_endpoint"],
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": login.client_id},
        )
        assert answer.status_code == 200, answer.text
    refreshed = shim_token(http, login, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json().get("error")) == ((400, "invalid_grant") if revoked else (200, None))


def test_no_response_or_log_line_carries_the_upstream_secret_or_tokens(
    shim_server: ShimServer, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """DESIGN.md §6.1 over a whole real login, refresh and revocation: the upstream client
    secret never reaches the client side, and the shim logs no secret, code or token."""
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        response.read()
        seen.append(f"{response.headers}\n{response.text}")

    http.event_hooks["response"].append(record)
    caplog.set_level(logging.DEBUG)
    login, code, tokens = complete_login(shim_server, http)
    refreshed = shim_token(http, login, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    revoke_form = {"token": refreshed.json()["refresh_token"], "client_id": login.client_id}
    assert http.post(login.metadata["revocation_endpoint"], data=revoke_form).status_code == 200
    secret = shim_server.idp.client_secret
    assert not [text for text in seen if secret in text]
    credentials = [secret, code, tokens["access_token"], tokens["refresh_token"], refreshed.json()["access_token"]]
    # The shim's own records and the server's (this test's client logs its URLs through httpx).
    server_side = [r.getMessage() for r in caplog.records if r.name.startswith(("mcp_oauth_shim", "uvicorn"))]
    assert server_side, "no log record of the shim was captured"
    assert not [line for line in server_side if any(c in line for c in credentials)]

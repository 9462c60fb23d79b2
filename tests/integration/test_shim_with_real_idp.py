"""The shim's front channel against the real IdP, in both IdP profiles, driven by hand (no MCP
client library) so each check sees the raw redirects."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import httpx
import pytest

from tests.peers.browser import AuthorizationResponse, follow_login, new_browser_client
from tests.peers.mcp_under_test import ShimServer
from tests.peers.servers import free_port

pytestmark = pytest.mark.integration

TIMEOUT = httpx.Timeout(15.0)


def start_authorization(server: ShimServer) -> tuple[str, str]:
    """Register a public client at the shim (RFC 7591) and build its authorization request
    (RFC 6749 §4.1.1 with PKCE S256 and the RFC 8707 resource); returns (URL, redirect URI)."""
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    metadata = httpx.get(server.public_url + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    registration = httpx.post(
        metadata["registration_endpoint"],
        json={"redirect_uris": [redirect_uri], "client_name": "hand-driven test client", "token_endpoint_auth_method": "none"},
        timeout=TIMEOUT,
    )
    assert registration.status_code == 201, registration.text
    challenge = base64.urlsafe_b64encode(hashlib.sha256(secrets.token_bytes(32)).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": registration.json()["client_id"],
        "redirect_uri": redirect_uri,
        "state": "client-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": server.mcp_url,
    }
    return metadata["authorization_endpoint"] + "?" + urlencode(query), redirect_uri


def test_redirect_to_the_client_carries_the_shim_as_issuer(shim_server: ShimServer) -> None:
    """RFC 9207 §2: `iss` names the server the client talked to, whether the IdP sent one or not."""
    url, redirect_uri = start_authorization(shim_server)
    response = AuthorizationResponse.from_url(follow_login(url, redirect_uri))
    assert (bool(response.code), response.state, response.iss) == (True, "client-state", shim_server.public_url)


@pytest.mark.parametrize(("browser", "honoured"), [("approving", True), ("another", False)])
def test_callback_is_honoured_only_in_the_browser_that_approved(
    shim_server: ShimServer, browser: str, honoured: bool
) -> None:
    """DESIGN.md §6.4: the IdP's redirect back to the shim is bound to the approving browser,
    so a victim cannot be made to finish a login an attacker started."""
    url, redirect_uri = start_authorization(shim_server)
    with new_browser_client() as approving, new_browser_client() as other:
        callback = follow_login(url, shim_server.public_url + "/oauth/callback", client=approving)
        response = (approving if browser == "approving" else other).get(callback)
    reached_client = response.is_redirect and response.headers["location"].startswith(redirect_uri + "?")
    code = AuthorizationResponse.from_url(response.headers["location"]).code if reached_client else None
    assert (reached_client and code is not None) is honoured, (response.status_code, response.text[:300])

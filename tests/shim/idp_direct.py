"""Tokens straight from the development IdP, without the shim in between.

The shim drops the IdP's ID token and wraps its refresh token; tests about what an attacker
could present (an ID token, a raw upstream refresh token) need the IdP's own answer, so this
plays a client of the IdP that holds the shim's upstream credentials: the authorization code
flow against the dev IdP's endpoints, then the code exchange.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from .kit import PUBLIC_URL, RESOURCE, Kit, pkce_pair

CALLBACK = PUBLIC_URL + "/oauth/callback"


def idp_tokens(kit: Kit, *, scope: str = "openid profile offline_access", nonce: str | None = "n-0S6_WzA2Mj") -> dict[str, Any]:
    """The dev IdP's token response (``access_token``, ``id_token``, ``refresh_token``, ...)."""
    verifier, challenge = pkce_pair()
    params = {
        "client_id": kit.idp.client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": scope,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "direct",
        "resource": RESOURCE,
    }
    if nonce is not None:
        params["nonce"] = nonce
    authorized = kit.idp_client.get("/authorize", params=params, follow_redirects=False)
    assert authorized.status_code == 302, authorized.text
    code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
    answer = kit.idp_client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": kit.idp.client_id,
            "client_secret": kit.idp.client_secret,
            "resource": RESOURCE,
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def idp_signing_key(kit: Kit) -> Any:
    """The private key the dev IdP signs with (its JWKS publishes the public half)."""
    return kit.idp.server.keys.keys[0]

"""Issued-token mode with an IdP whose access tokens run to several KiB (Keycloak, Entra ID or
Okta JWTs listing roles and groups) and which gives no refresh token (``offline_access`` not
granted): the shim's access token carries the IdP's encrypted (``upt``), and so does its
refresh token, which each refresh re-checks at UserInfo. Both must keep working at that size.
The development IdP stands in: its access token names the user, here one with a long name."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.dev_idp import DevIdP
from tests.issued.test_issued_login import IdPAnswers, protected_app
from tests.shim.kit import IDP_ISSUER, PUBLIC_URL, RESOURCE, SECRET_KEY, Kit

LONG_USERNAME = "user-" + "r" * 5_000


def kit_with_large_idp_tokens(username: str = LONG_USERNAME) -> Kit:
    idp = DevIdP(issuer=IDP_ISSUER, redirect_uris=[PUBLIC_URL + "/oauth/callback"], auto_approve=True, send_iss=True,
                 audiences=[RESOURCE], username=username)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url=IDP_ISSUER)
    upstream = Upstream.oidc(issuer=IDP_ISSUER, client_id=idp.client_id, client_secret=idp.client_secret, audience=RESOURCE,
                             default_scopes=("openid", "profile"))
    shim = OAuthShim(public_url=PUBLIC_URL, resource=RESOURCE, upstream=upstream, secret_keys=[SECRET_KEY], http_client=http,
                     issue_tokens=True)
    return Kit(idp=idp, shim=shim, client=TestClient(shim.app, base_url=PUBLIC_URL), idp_client=TestClient(idp.app, base_url=IDP_ISSUER))


def test_a_refresh_token_carrying_a_large_idp_access_token_refreshes() -> None:
    kit = kit_with_large_idp_tokens()
    seen = IdPAnswers(kit)
    login = kit.login()
    first = kit.exchange(login)
    assert first.status_code == 200, first.text
    assert "refresh_token" not in seen.bodies[0] and len(seen.bodies[0]["access_token"]) > 5_000
    again = kit.token(grant_type="refresh_token", refresh_token=first.json()["refresh_token"], client_id=login["client_id"])
    assert again.status_code == 200, again.text
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + again.json()["access_token"]})
    assert answer.status_code == 200, answer.headers.get("www-authenticate")


def test_tokens_too_large_to_come_back_are_a_502_at_the_token_endpoint_not_refused_later() -> None:
    """An IdP access token and user claims that would make the shim's tokens longer than it
    accepts back (32 KiB, 48 KiB): the token endpoint says so, instead of issuing tokens every
    MCP request or refresh would then refuse."""
    kit = kit_with_large_idp_tokens(username="user-" + "r" * 11_000)
    answer = kit.exchange(kit.login())
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"] == "server_error"
    assert "too large" in answer.json()["error_description"]
    assert answer.headers["cache-control"] == "no-store"

"""RFC 7009 for a ``MachineClient(mode="upstream")`` with a real IdP (oidc-provider with its client
credentials grant, tests/peers/idp.mjs --client-credentials): the machine client revokes the
IdP's own machine token at the shim, authenticated as at the token endpoint, and the shim sends
that token to the IdP's revocation endpoint with its own client credentials. oidc-provider does
not revoke its JWT access tokens (RFC 7009 §2.1 makes access-token revocation a SHOULD): its
``unsupported_token_type`` (§2.2.1) is relayed, as for any IdP access token in passthrough mode."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.machine_clients import MachineClient
from tests.peers.idp import IdP
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration

SECRET = secrets.token_urlsafe(24)


def test_a_machine_clients_revocation_of_the_idps_machine_token_is_answered_by_the_idp(
    start_idp: Callable[..., IdP], public_url: str, serve_app: Callable[..., RunningServer]
) -> None:
    mcp_url = public_url + "/mcp"
    idp = start_idp(
        redirect_uris=[public_url + "/oauth/callback"],
        resources=[mcp_url],
        token_endpoint_auth_method="client_secret_basic",
        client_credentials=True,
        resource_scopes="notes:read",
    )
    upstream = Upstream.oidc(
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        audience=mcp_url,
        audience_param="resource",
        token_auth_method="client_secret_basic",
    )
    shim = OAuthShim(
        public_url=public_url,
        upstream=upstream,
        secret_keys=[secrets.token_urlsafe(48)],
        scopes_supported=["notes:read"],
        machine_clients=[MachineClient("nightly-report", client_secret=SECRET, scopes=("notes:read",), mode="upstream")],
    )
    running = serve_app(shim.app)
    auth = httpx.BasicAuth("nightly-report", SECRET)
    with httpx.Client(base_url=running.url, auth=auth, timeout=30) as http:
        granted = http.post("/oauth/token", data={"grant_type": "client_credentials", "resource": mcp_url})
        assert granted.status_code == 200, granted.text
        revoked = http.post("/oauth/revoke", data={"token": granted.json()["access_token"], "token_type_hint": "access_token"})
    assert (revoked.status_code, revoked.json()["error"]) == (400, "unsupported_token_type"), revoked.text
    assert "POST /token/revocation -> 400" in idp.log_tail()

"""Client credentials served by the IdP's own grant (``MachineClient(mode="upstream")``).

What is real: the IdP (oidc-provider with its client credentials grant and RFC 8707 resource
indicators, tests/peers/idp.mjs --client-credentials), the mcp SDK's
``ClientCredentialsOAuthProvider`` doing its whole flow over HTTP, the shim, bridge and FastAPI
app on loopback. The machine client authenticates at the shim; the shim asks the IdP for a
client_credentials token with its own client and the resource as audience, and the IdP's JWT
reaches the route as it is, verified by the shim's passthrough verifier. The machine client
revokes that token at the shim (RFC 7009), which sends it to the IdP's revocation endpoint.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# a dependency local to build_api.
import json
import secrets
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import httpx
import httpx2
import pytest
from fastapi import FastAPI, Security
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.types import TextContent

from mcp_bridge import MCPBridge
from mcp_bridge.dependencies import bearer_token
from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.machine_clients import MachineClient
from tests.peers.idp import IdP
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0
SECRET = secrets.token_urlsafe(24)


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, info: Any) -> None:
        self.client_info = info


def idp_and_shim_with_an_upstream_machine_client(start_idp: Callable[..., IdP], public_url: str) -> tuple[IdP, OAuthShim]:
    """oidc-provider with its client credentials grant, and the shim in front of it serving the
    machine client ``nightly-report`` (secret :data:`SECRET`) with the IdP's own tokens."""
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
    return idp, shim


def build_api(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="machine-clients-upstream")
    verified = bearer_token(shim)

    @app.get("/whoami", operation_id="whoami")
    def whoami(token: Annotated[AccessToken, Security(verified, scopes=["notes:read"])]) -> dict[str, Any]:
        claims = token.claims or {}
        return {"subject": token.subject, "iss": claims.get("iss"), "aud": claims.get("aud"), "scopes": token.scopes}

    return app


def test_sdk_client_credentials_gets_the_idps_own_machine_token(
    start_idp: Callable[..., IdP], public_url: str, serve_app: Callable[..., RunningServer]
) -> None:
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    mcp_url = public_url + "/mcp"
    idp, shim = idp_and_shim_with_an_upstream_machine_client(start_idp, public_url)
    app = build_api(shim)
    MCPBridge(app, auth=shim).mount_http("/mcp")
    running = serve_app(app)
    provider = ClientCredentialsOAuthProvider(
        server_url=running.url + "/mcp", storage=MemoryStorage(), client_id="nightly-report", client_secret=SECRET,
        scope="notes:read", issuer=shim.issuer,
    )

    async def scenario() -> Any:
        with anyio.fail_after(TIMEOUT_S):
            async with httpx2.AsyncClient(auth=provider, timeout=TIMEOUT_S) as http:
                async with Client(streamable_http_client(running.url + "/mcp", http_client=http), read_timeout_seconds=TIMEOUT_S) as session:
                    return await session.call_tool("whoami")

    result = anyio.run(scenario)
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent)
    seen = json.loads(content.text)
    # The IdP's token: its issuer, the shim's client at the IdP as subject (RFC 6749 §4.4), our resource.
    assert (seen["iss"], seen["subject"], seen["aud"], seen["scopes"]) == (idp.issuer, idp.client_id, mcp_url, ["notes:read"])


def test_a_machine_clients_revocation_of_the_idps_machine_token_is_answered_by_the_idp(
    start_idp: Callable[..., IdP], public_url: str, serve_app: Callable[..., RunningServer]
) -> None:
    """Authenticated as at the token endpoint, the shim sends the IdP's token to the IdP's
    revocation endpoint with its own client credentials. oidc-provider does not revoke its JWT
    access tokens (RFC 7009 §2.1 makes access-token revocation a SHOULD): its
    ``unsupported_token_type`` (§2.2.1) is relayed, as for any IdP access token in passthrough mode."""
    idp, shim = idp_and_shim_with_an_upstream_machine_client(start_idp, public_url)
    running = serve_app(shim.app)
    auth = httpx.BasicAuth("nightly-report", SECRET)
    with httpx.Client(base_url=running.url, auth=auth, timeout=30) as http:
        granted = http.post("/oauth/token", data={"grant_type": "client_credentials", "resource": public_url + "/mcp"})
        assert granted.status_code == 200, granted.text
        revoked = http.post("/oauth/revoke", data={"token": granted.json()["access_token"], "token_type_hint": "access_token"})
    assert (revoked.status_code, revoked.json()["error"]) == (400, "unsupported_token_type"), revoked.text
    assert "POST /token/revocation -> 400" in idp.log_tail()

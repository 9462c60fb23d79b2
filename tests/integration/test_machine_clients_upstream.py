"""Client credentials served by the IdP's own grant (``MachineClient(mode="upstream")``).

What is real: the IdP (oidc-provider with its client credentials grant and RFC 8707 resource
indicators, tests/peers/idp.mjs --client-credentials), the mcp SDK's
``ClientCredentialsOAuthProvider`` doing its whole flow over HTTP, the shim, bridge and FastAPI
app on loopback. The machine client authenticates at the shim; the shim asks the IdP for a
client_credentials token with its own client and the resource as audience, and the IdP's JWT
reaches the route as it is, verified by the shim's passthrough verifier.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# a dependency local to build_api.
import json
import secrets
from collections.abc import Callable
from typing import Annotated, Any

import anyio
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

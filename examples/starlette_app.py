"""The shim in front of an MCP server (the `mcp` SDK's MCPServer), in one Starlette app.

    export MCP_OAUTH_SHIM_UPSTREAM_ISSUER=https://your-tenant.eu.auth0.com/  # exactly as the IdP spells it
    export MCP_OAUTH_SHIM_CLIENT_ID=...                 # a confidential client at the IdP
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    python examples/starlette_app.py

Register ``http://127.0.0.1:8000/oauth/callback`` as the only callback URL of that client at
the IdP, then point an MCP client at ``http://127.0.0.1:8000/mcp``. Optional variables:

    MCP_OAUTH_SHIM_AUDIENCE         the ``aud`` the IdP puts in tokens for this API (default: the MCP URL)
    MCP_OAUTH_SHIM_AUDIENCE_PARAM   how to ask the IdP for it: resource (default) | audience | none
    MCP_OAUTH_SHIM_PUBLIC_URL       where clients reach this server (default http://127.0.0.1:8000)
    MCP_OAUTH_SHIM_PORT             the local port (default: the port of the public URL, else 8000)

The server listens on 127.0.0.1 only. See docs/configuration.md for every option.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream
from mcp_oauth_shim.logs import uvicorn_log_config

# The variables of `mcp-oauth-shim serve`, so one environment configures either.
REQUIRED = (
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER",
    "MCP_OAUTH_SHIM_CLIENT_ID",
    "MCP_OAUTH_SHIM_CLIENT_SECRET",
    "MCP_OAUTH_SHIM_SECRET_KEYS",
)


def shim_from_env(env: Mapping[str, str]) -> OAuthShim:
    """The shim, configured from the environment; exits with a readable message when it cannot."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise SystemExit(
            f"starlette_app.py: set {', '.join(missing)} (see the top of examples/starlette_app.py). "
            "A key: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    public_url = env.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    resource = public_url + "/mcp"
    try:
        upstream = Upstream.oidc(
            issuer=env["MCP_OAUTH_SHIM_UPSTREAM_ISSUER"],
            client_id=env["MCP_OAUTH_SHIM_CLIENT_ID"],
            client_secret=env["MCP_OAUTH_SHIM_CLIENT_SECRET"],
            audience=env.get("MCP_OAUTH_SHIM_AUDIENCE") or resource,
            audience_param=env.get("MCP_OAUTH_SHIM_AUDIENCE_PARAM", "resource"),  # type: ignore[arg-type]
            default_scopes=("openid", "profile"),
            extra_scopes=("offline_access",),  # refresh tokens, where the IdP allows them
        )
        keys = [key.strip() for key in env["MCP_OAUTH_SHIM_SECRET_KEYS"].split(",") if key.strip()]  # newest first
        return OAuthShim(public_url=public_url, resource=resource, upstream=upstream, secret_keys=keys)
    except ConfigurationError as exc:  # the message says what to change
        raise SystemExit(f"starlette_app.py: {exc}") from None


def create_mcp() -> MCPServer:
    """Plain SDK code: nothing here knows about OAuth."""
    mcp = MCPServer("starlette example")

    @mcp.tool()
    def whoami() -> str:
        """The signed-in user: the subject of the caller's access token."""
        token = get_access_token()  # set by shim.protect for the duration of the call
        return (token.subject if token else None) or "unknown"

    return mcp


def build_app(shim: OAuthShim, mcp: MCPServer) -> Starlette:
    origin = urlsplit(shim.public_url)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=urlsplit(shim.resource).path,
        # DNS-rebinding protection: serve only requests addressed to our own host.
        transport_security=TransportSecuritySettings(
            allowed_hosts=[origin.netloc], allowed_origins=[f"{origin.scheme}://{origin.netloc}"]
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Starlette does not run a mounted app's lifespan: start the SDK's session manager here,
        # and let the shim close its pooled connections to the IdP on shutdown.
        async with shim.lifespan(app), mcp.session_manager.run():
            yield

    return Starlette(
        routes=[
            *shim.routes,  # metadata and /oauth/*: open to everyone, absolute paths, so at the root
            Mount("/", app=shim.protect(mcp_app)),  # /mcp: 401 + WWW-Authenticate unless the token is good
        ],
        lifespan=lifespan,
    )


def main() -> None:
    shim = shim_from_env(os.environ)
    port = int(os.environ.get("MCP_OAUTH_SHIM_PORT") or urlsplit(shim.public_url).port or 8000)
    print(f"MCP endpoint: {shim.resource}")
    print(f"Register this callback URL at the IdP: {shim.public_url}/oauth/callback")
    # Query strings (authorization codes, signed state) are redacted from the access log.
    uvicorn.run(build_app(shim, create_mcp()), host="127.0.0.1", port=port, log_config=uvicorn_log_config())


if __name__ == "__main__":
    main()

"""An MCP server (the official `mcp` SDK's MCPServer) that users sign in to with your own IdP.

Run it against any OpenID Connect provider (Auth0, Keycloak, Okta, Entra ID, ...):

    export MCP_OAUTH_SHIM_UPSTREAM_ISSUER=https://your-tenant.eu.auth0.com/  # exactly as the IdP spells it
    export MCP_OAUTH_SHIM_CLIENT_ID=...                 # a confidential "regular web app" client
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_AUDIENCE_PARAM=audience       # Auth0; RFC 8707 IdPs: resource
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c "import secrets; print(secrets.token_urlsafe(48))")
    python examples/mcp_server.py

and register ``http://127.0.0.1:8000/oauth/callback`` as the ONLY callback URL of that client
at the IdP. MCP clients then connect to ``http://127.0.0.1:8000/mcp``.

How the pieces fit, for a newcomer: an MCP client that gets a 401 from /mcp reads where to log
in from the shim's metadata documents, registers itself at the shim (no account at your IdP is
created), sends the user's browser to the shim's consent page and from there to your IdP, and
finally swaps the code for the IdP's access token at the shim. The shim adds the IdP's client
secret on the way; the client never sees it. Every call to /mcp then carries that access token,
and ``shim.protect`` checks it (signature, issuer, audience, expiry) before the SDK sees it.

Environment variables, named as for ``mcp-oauth-shim serve`` (only the first three are required):

    MCP_OAUTH_SHIM_UPSTREAM_ISSUER     the IdP's issuer URL (its discovery document lives under it)
    MCP_OAUTH_SHIM_CLIENT_ID           the confidential client registered at the IdP for this server
    MCP_OAUTH_SHIM_CLIENT_SECRET       its secret (stays on the server)
    MCP_OAUTH_SHIM_AUDIENCE            what the IdP puts in the tokens' ``aud``; default: the MCP URL
    MCP_OAUTH_SHIM_AUDIENCE_PARAM      how to ask for it: resource (RFC 8707) | audience (Auth0) | none
    MCP_OAUTH_SHIM_SCOPES              asked for when a client asks for none; default "openid profile"
    MCP_OAUTH_SHIM_EXTRA_SCOPES        always added; default "offline_access" (gives refresh tokens)
    MCP_OAUTH_SHIM_TOKEN_AUTH_METHOD   client_secret_post (default) | client_secret_basic
    MCP_OAUTH_SHIM_PUBLIC_URL          where clients reach this server; default http://127.0.0.1:8000
    MCP_OAUTH_SHIM_HOST, _PORT         where to listen; default 127.0.0.1 and the public URL's port
    MCP_OAUTH_SHIM_SECRET_KEYS         comma-separated signing keys, newest first (rotate by prepending)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.logs import RedactQueryStrings

logger = logging.getLogger("examples.mcp_server")


def create_mcp_server() -> MCPServer:
    """The MCP server itself: plain SDK code, nothing here knows about OAuth."""
    mcp = MCPServer("mcp-oauth-shim example")

    @mcp.tool()
    def whoami() -> dict[str, object]:
        """Who is calling: the signed-in user (the token's subject) and the scopes granted."""
        # The shim verified the bearer token before this runs and handed it to the SDK, which
        # exposes it per request through get_access_token().
        token = get_access_token()
        if token is None:  # cannot happen behind shim.protect; kept for running without it
            return {"subject": None}
        return {"subject": token.subject, "scopes": token.scopes}

    @mcp.tool()
    def current_time(timezone: str = "UTC") -> str:
        """The current date and time in an IANA time zone such as Europe/Paris."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"Unknown time zone {timezone!r}; use an IANA name like Europe/Paris.") from None
        return datetime.now(zone).isoformat(timespec="seconds")

    return mcp


def build_app(shim: OAuthShim, mcp: MCPServer, public_url: str) -> Starlette:
    """Compose the shim's OAuth routes with the MCP endpoint that only accepts valid tokens."""
    origin = urlsplit(public_url)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        # DNS-rebinding protection: only requests addressed to our public host are served.
        transport_security=TransportSecuritySettings(
            allowed_hosts=[origin.netloc], allowed_origins=[f"{origin.scheme}://{origin.netloc}"]
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A mounted app's own lifespan is not run by Starlette: start the SDK's session manager
        # here, and let the shim close its connections to the IdP on shutdown.
        async with shim.lifespan(app), mcp.session_manager.run():
            yield

    return Starlette(
        routes=[
            *shim.routes,  # /.well-known/..., /oauth/register, /oauth/authorize, ... (open to everyone)
            Mount("/", app=shim.protect(mcp_app)),  # /mcp: 401 with a challenge unless the token is good
        ],
        lifespan=lifespan,
    )


def shim_from_env(public_url: str) -> OAuthShim:
    """The shim configured from the environment variables listed at the top of this file."""
    env = os.environ
    required = ("MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "MCP_OAUTH_SHIM_CLIENT_ID", "MCP_OAUTH_SHIM_CLIENT_SECRET")
    missing = [name for name in required if not env.get(name)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} (see the top of examples/mcp_server.py). "
                 "No IdP at hand? Run `python examples/demo.py` instead.")
    resource = public_url + "/mcp"
    upstream = Upstream.oidc(
        issuer=env["MCP_OAUTH_SHIM_UPSTREAM_ISSUER"],
        client_id=env["MCP_OAUTH_SHIM_CLIENT_ID"],
        client_secret=env["MCP_OAUTH_SHIM_CLIENT_SECRET"],
        audience=env.get("MCP_OAUTH_SHIM_AUDIENCE", resource),
        audience_param=env.get("MCP_OAUTH_SHIM_AUDIENCE_PARAM", "resource"),  # type: ignore[arg-type]
        default_scopes=tuple(env.get("MCP_OAUTH_SHIM_SCOPES", "openid profile").split()),
        extra_scopes=tuple(env.get("MCP_OAUTH_SHIM_EXTRA_SCOPES", "offline_access").split()),
        token_auth_method=env.get("MCP_OAUTH_SHIM_TOKEN_AUTH_METHOD", "client_secret_post"),  # type: ignore[arg-type]
    )
    keys = [k.strip() for k in env.get("MCP_OAUTH_SHIM_SECRET_KEYS", "").split(",") if k.strip()]
    if not keys:
        # Fine for a first try; with a fixed key, logins survive restarts and replicas agree.
        logger.warning(
            "MCP_OAUTH_SHIM_SECRET_KEYS is not set: using a random key, clients must log in again after a restart."
        )
        keys = [secrets.token_urlsafe(32)]
    return OAuthShim(public_url=public_url, resource=resource, upstream=upstream, secret_keys=keys)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(RedactQueryStrings())
    public_url = os.environ.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    app = build_app(shim_from_env(public_url), create_mcp_server(), public_url)
    host = os.environ.get("MCP_OAUTH_SHIM_HOST", "127.0.0.1")
    port = int(os.environ.get("MCP_OAUTH_SHIM_PORT") or urlsplit(public_url).port or 8000)
    print(f"MCP endpoint: {public_url}/mcp   (register {public_url}/oauth/callback at your IdP)")
    uvicorn.run(app, host=host, port=port)


if __name__ == "__main__":
    main()

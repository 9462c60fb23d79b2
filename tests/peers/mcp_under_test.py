"""The server under test: the shim in front of the mcp SDK's MCPServer (TEAM.md's wiring).

`whoami` reports the caller as the SDK sees it (the access token the shim verified), `echo`
returns its input. The shim and the SDK are imported when a server is built, not at import.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from .idp import IdP
from .servers import RequestLog


def build_mcp_server() -> Any:
    """An MCPServer with the `whoami` and `echo` tools."""
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("shim-under-test")

    @server.tool()
    def whoami() -> str:
        """Who the access token says the caller is."""
        token = get_access_token()
        if token is None:
            raise ValueError("the request reached the tool without an authenticated user")
        claims = token.claims or {}
        return json.dumps(
            {
                "subject": token.subject,
                "client_id": token.client_id,
                "scopes": token.scopes,
                "iss": claims.get("iss"),
                "aud": claims.get("aud"),
            }
        )

    @server.tool()
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    return server


@dataclass(frozen=True)
class ShimServer:
    """The shim + MCPServer app, served on loopback, and the IdP behind it."""

    public_url: str
    mcp_url: str
    idp: IdP
    requests: RequestLog


@dataclass(frozen=True)
class ShimSettings:
    """How the shim is configured towards the IdP."""

    audience_param: str = "resource"  # "audience" (Auth0) or "resource" (RFC 8707)
    default_scopes: tuple[str, ...] = ("openid", "profile", "email")
    extra_scopes: tuple[str, ...] = ("offline_access",)


def build_shim_app(public_url: str, idp: IdP, settings: ShimSettings = ShimSettings()) -> ASGIApp:
    """The shim's routes plus the protected MCPServer at `public_url + "/mcp"`, one Starlette app."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from mcp_oauth_shim import OAuthShim, Upstream

    mcp_url = public_url + "/mcp"
    upstream = Upstream.oidc(
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        audience=mcp_url,
        audience_param=settings.audience_param,  # type: ignore[arg-type]
        default_scopes=settings.default_scopes,
        extra_scopes=settings.extra_scopes,
        token_auth_method=idp.token_endpoint_auth_method,  # type: ignore[arg-type]
    )
    shim = OAuthShim(
        public_url=public_url, resource=mcp_url, upstream=upstream, secret_keys=[secrets.token_urlsafe(48)]
    )
    mcp = build_mcp_server()
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        # DNS rebinding protection stays on: only this server's own Host and Origin pass.
        transport_security=TransportSecuritySettings(
            allowed_hosts=[public_url.split("://", 1)[1]], allowed_origins=[public_url]
        ),
    )
    return Starlette(
        routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))],
        # A Mount does not run the mounted app's lifespan; the session manager needs one.
        lifespan=lambda _app: mcp.session_manager.run(),
    )

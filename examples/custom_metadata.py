"""Serve your own RFC 8414 metadata document verbatim, and protect an MCP server with it.

For an authorization server that already does what MCP clients need (registration or
pre-registered clients, PKCE S256, tokens whose ``aud`` is this MCP server) and only has to be
*found*: the shim serves the RFC 9728 resource metadata pointing at that server and your
document at the well-known locations, and checks tokens on /mcp. No /oauth/* endpoints run.
See docs/custom-metadata.md for when this is (and is not) what you want.

    export OAUTH_METADATA_FILE=as-metadata.json   # needs issuer, authorization_endpoint,
                                                  # token_endpoint; jwks_uri to verify tokens
    python examples/custom_metadata.py

Optional: MCP_OAUTH_SHIM_PUBLIC_URL (default http://127.0.0.1:8000), MCP_OAUTH_SHIM_PORT. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth_shim import ConfigurationError, OAuthShim
from mcp_oauth_shim.logs import uvicorn_log_config


def metadata_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("OAUTH_METADATA_FILE", "").strip()
    if not path:
        raise SystemExit("custom_metadata.py: set OAUTH_METADATA_FILE to a JSON file holding your RFC 8414 document.")
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"custom_metadata.py: cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise SystemExit(f"custom_metadata.py: {path} must hold a JSON object.")
    return document


def shim_from_env(env: Mapping[str, str]) -> OAuthShim:
    public_url = env.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        # No upstream= and no secret_keys=: nothing is proxied and nothing is signed in this mode.
        return OAuthShim(public_url=public_url, custom_metadata=metadata_from_env(env))
    except ConfigurationError as exc:
        raise SystemExit(f"custom_metadata.py: {exc}") from None


def build_app(shim: OAuthShim) -> Starlette:
    mcp = MCPServer("custom metadata example")

    @mcp.tool()
    def whoami() -> str:
        """The signed-in user: the subject of the caller's access token."""
        token = get_access_token()
        return (token.subject if token else None) or "unknown"

    origin = urlsplit(shim.public_url)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=urlsplit(shim.resource).path,
        transport_security=TransportSecuritySettings(
            allowed_hosts=[origin.netloc], allowed_origins=[f"{origin.scheme}://{origin.netloc}"]
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shim.lifespan(app), mcp.session_manager.run():
            yield

    # shim.routes holds only the metadata documents here; the verifier checks the tokens that
    # your authorization server minted: its issuer, its jwks_uri, aud = shim.resource.
    return Starlette(routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))], lifespan=lifespan)


def main() -> None:
    shim = shim_from_env(os.environ)
    port = int(os.environ.get("MCP_OAUTH_SHIM_PORT") or urlsplit(shim.public_url).port or 8000)
    print(f"MCP endpoint: {shim.resource}   (authorization server: {shim.issuer})")
    uvicorn.run(build_app(shim), host="127.0.0.1", port=port, log_config=uvicorn_log_config())


if __name__ == "__main__":
    main()

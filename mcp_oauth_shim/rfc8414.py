"""RFC 8414 authorization server metadata, and the same document for OIDC discovery probes.

The ``issuer`` is the shim's own (never the IdP's): RFC 8414 §3.3 and current MCP clients
refuse a document whose issuer differs from the one they derived the URL from. The document is
served at every location a client of any MCP revision probes (§3.1 path insertion, the origin
root of 2025-03-26, OIDC Discovery §4 appended and MCP 2025-11-25's path-inserted OIDC form).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from .context import ShimContext
from .upstream import UpstreamError

logger = logging.getLogger("mcp_oauth_shim.metadata")

METADATA_CACHE_CONTROL = "public, max-age=300"


def metadata_paths(issuer: str) -> list[str]:
    """Every path (on the issuer's host) where the metadata document is served."""
    path = urlsplit(issuer).path.rstrip("/")
    paths = [
        "/.well-known/oauth-authorization-server" + path,
        "/.well-known/openid-configuration" + path,
        path + "/.well-known/openid-configuration",
    ]
    if path:
        # MCP 2025-03-26 clients ignore the issuer path and ask the origin root.
        paths += ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    return list(dict.fromkeys(paths))


def build_metadata(ctx: ShimContext, *, revocation: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "issuer": ctx.issuer,
        "authorization_endpoint": ctx.url(ctx.paths.authorize),
        "token_endpoint": ctx.url(ctx.paths.token),
        "registration_endpoint": ctx.url(ctx.paths.register),
        "scopes_supported": list(ctx.scopes_supported),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": ctx.metadata_documents,
    }
    if revocation:
        doc["revocation_endpoint"] = ctx.url(ctx.paths.revoke)
        doc["revocation_endpoint_auth_methods_supported"] = ["none"]
    return doc


class MetadataHandler:
    """Serves the metadata as pre-encoded bytes; built once the IdP's endpoints are known."""

    def __init__(self, ctx: ShimContext, custom: Mapping[str, Any] | None = None) -> None:
        self.ctx = ctx
        self._body: bytes | None = json.dumps(dict(custom)).encode() if custom is not None else None

    async def __call__(self, request: Request) -> Response:
        body = self._body
        if body is None:
            try:
                upstream = await self.ctx.upstream_client.metadata()
            except UpstreamError as err:
                # Clients need the document even while the IdP is away; revocation is unknown then.
                logger.warning("serving metadata without revocation: %s", err.description)
                body = json.dumps(build_metadata(self.ctx, revocation=False)).encode()
            else:
                body = json.dumps(build_metadata(self.ctx, revocation=bool(upstream.revocation_endpoint))).encode()
                self._body = body
        return Response(body, media_type="application/json", headers={"Cache-Control": METADATA_CACHE_CONTROL})

"""RFC 8414 authorization server metadata, and the same document for OIDC discovery probes.

The ``issuer`` is the shim's own (never the IdP's): RFC 8414 §3.3 and current MCP clients
refuse a document whose issuer differs from the one they derived the URL from. The document is
served at every location a client of any MCP revision probes (§3.1 path insertion, the origin
root of 2025-03-26, OIDC Discovery §4 appended and MCP 2025-11-25's path-inserted OIDC form).
The endpoint serving it is :class:`.endpoints.metadata.MetadataHandler`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .context import ShimContext


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
    """RFC 8414 §2: the shim's endpoints and what they support; ``revocation`` when the IdP
    can revoke (RFC 7009), since the shim's revocation endpoint forwards to it."""
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

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
from .grants import offered_grants


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
    can revoke (RFC 7009), since the shim's revocation endpoint forwards to it. In issued-token
    mode the document names the shim's ``jwks_uri``."""
    doc: dict[str, Any] = {
        "issuer": ctx.issuer,
        "authorization_endpoint": ctx.url(ctx.paths.authorize),
        "token_endpoint": ctx.url(ctx.paths.token),
        "registration_endpoint": ctx.url(ctx.paths.register),
        "scopes_supported": list(ctx.scopes_supported),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(offered_grants(ctx)),
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": ctx.metadata_documents,
    }
    if ctx.issued is not None:
        # Issued-token mode: the keys that verify the shim's own access tokens (RFC 8414 §2).
        doc["jwks_uri"] = ctx.url(ctx.paths.jwks)
    machine = ctx.machine_clients
    algorithms: list[str] = []
    if machine is not None:
        # The machine clients' methods (client credentials extension, RFC 7523 §2.2): the
        # algorithms are required alongside private_key_jwt (RFC 8414 §2).
        doc["token_endpoint_auth_methods_supported"] += list(machine.auth_methods_supported)
        algorithms = list(machine.signing_algorithms_supported)
        if algorithms:
            doc["token_endpoint_auth_signing_alg_values_supported"] = algorithms
    if revocation:
        # RFC 7009 §2.1: clients authenticate at revocation as at the token endpoint.
        doc["revocation_endpoint"] = ctx.url(ctx.paths.revoke)
        doc["revocation_endpoint_auth_methods_supported"] = list(doc["token_endpoint_auth_methods_supported"])
        if algorithms:
            doc["revocation_endpoint_auth_signing_alg_values_supported"] = list(algorithms)
    return doc

"""RFC 9728 OAuth 2.0 protected resource metadata for the MCP endpoint.

``authorization_servers[0]`` is byte for byte the shim's issuer. Served path-inserted
(§3.1: ``/.well-known/oauth-protected-resource/<resource path>``) and at the root, which some
clients probe when the resource has a path. The endpoint serving it is
:class:`.endpoints.metadata.ProtectedResourceMetadataHandler`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .context import ShimContext

WELL_KNOWN = "/.well-known/oauth-protected-resource"
#: Scopes that only ask the authorization server for a refresh token.
REFRESH_ONLY_SCOPES = frozenset({"offline_access"})


def resource_metadata_url(resource: str) -> str:
    """§3.1: the well-known segment goes between the host and the resource's path."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


def resource_metadata_paths(resource: str) -> list[str]:
    path = urlsplit(resource).path.rstrip("/")
    return list(dict.fromkeys([WELL_KNOWN + path, WELL_KNOWN]))


def resource_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes the protected resource names (its metadata, its challenges): ``scopes``
    without ``offline_access``. MCP 2026-07-28 "Refresh Tokens": refresh tokens are not a
    resource requirement, so a resource SHOULD NOT list it; the authorization server's metadata
    still does, which is where a client looks for it."""
    return tuple(scope for scope in scopes if scope not in REFRESH_ONLY_SCOPES)


def build_resource_metadata(ctx: ShimContext) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resource": ctx.resource,
        "authorization_servers": [ctx.issuer],
        "scopes_supported": list(resource_scopes(ctx.scopes_supported)),
        "bearer_methods_supported": ["header"],
    }
    if ctx.resource_name:
        doc["resource_name"] = ctx.resource_name
    return doc

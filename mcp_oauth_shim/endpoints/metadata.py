"""The discovery documents: RFC 8414 authorization server metadata (also answering OIDC
Discovery probes) and RFC 9728 protected resource metadata.

The documents are built by :mod:`..rfc8414` and :mod:`..rfc9728`; here they are served as
pre-encoded JSON, cacheable for five minutes, at every path the shim wires them to (as is the
JWK Set of :mod:`.jwks`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..context import ShimContext
from ..rfc8414 import build_metadata
from ..rfc9728 import build_resource_metadata
from ..upstream import UpstreamError

logger = logging.getLogger("mcp_oauth_shim.metadata")

METADATA_CACHE_CONTROL = "public, max-age=300"


def json_document(body: bytes) -> Response:
    """A discovery document: pre-encoded JSON, cacheable for five minutes."""
    return Response(body, media_type="application/json", headers={"Cache-Control": METADATA_CACHE_CONTROL})


class StaticDocument:
    """Serves one JSON document, encoded once."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __call__(self, request: Request) -> Response:
        return json_document(self._body)


class MetadataHandler:
    """RFC 8414 §3: the authorization server metadata, built once the IdP's endpoints are known.

    With ``custom``, that document is served as it is instead.
    """

    def __init__(self, ctx: ShimContext, custom: Mapping[str, Any] | None = None) -> None:
        self.ctx = ctx
        self._body: bytes | None = json.dumps(dict(custom)).encode() if custom is not None else None

    async def __call__(self, request: Request) -> Response:
        if self._body is not None:
            return json_document(self._body)
        try:
            revocation = bool((await self.ctx.upstream_client.metadata()).revocation_endpoint)
        except UpstreamError as err:
            # Clients need the document even while the IdP is away; revocation is unknown then.
            logger.warning("serving metadata without revocation: %s", err.description)
            return json_document(json.dumps(build_metadata(self.ctx, revocation=False)).encode())
        self._body = json.dumps(build_metadata(self.ctx, revocation=revocation)).encode()
        return json_document(self._body)


class ProtectedResourceMetadataHandler(StaticDocument):
    """RFC 9728 §3: the protected resource metadata of the MCP endpoint."""

    def __init__(self, ctx: ShimContext) -> None:
        super().__init__(json.dumps(build_resource_metadata(ctx)).encode())

"""A FastAPI dependency that checks the shim's bearer tokens and scopes on ordinary routes.

With `auth=shim` the bridge verifies every MCP request, but the app's routes are usually also
served over plain HTTP, where nothing checks them. Declaring a route's scopes with this
dependency protects both doors with one line, and the same scopes become the tool's
requirement:

    verified = bearer_token(shim)

    @app.get("/notes")
    def list_notes(token: Annotated[AccessToken, Security(verified, scopes=["notes:read"])]): ...

Refusals follow RFC 6750 §3: 401 (no token, `invalid_token`) or 403 (`insufficient_scope`)
with a `WWW-Authenticate: Bearer` challenge naming the RFC 9728 resource metadata. Calls that
came through the bridge hit the verifier's cache, so the second check costs a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from fastapi.security import SecurityScopes

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from mcp_oauth_shim import OAuthShim


def bearer_token(shim: OAuthShim) -> Callable[[SecurityScopes, Request], Awaitable[AccessToken]]:
    """A dependency returning the verified `AccessToken` of the request (use with `Security`)."""
    from mcp_oauth_shim.rfc6750 import bearer_challenge
    from mcp_oauth_shim.upstream import UpstreamError
    from mcp_oauth_shim.verify import InsufficientScope, InvalidToken

    metadata = shim.resource_metadata_url

    def refuse(status: int, error: str | None, description: str, scopes: tuple[str, ...]) -> HTTPException:
        challenge = bearer_challenge(
            resource_metadata=metadata, scope=scopes, error=error, error_description=description
        )
        return HTTPException(status_code=status, detail=description, headers={"WWW-Authenticate": challenge})

    async def verified_token(security_scopes: SecurityScopes, request: Request) -> AccessToken:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        needed = tuple(security_scopes.scopes)
        if scheme.lower() != "bearer" or not token.strip():
            raise refuse(401, None, "An OAuth access token is required.", needed)
        try:
            return await shim.verifier.authenticate(token.strip(), scopes=needed)
        except InvalidToken as exc:
            raise refuse(401, "invalid_token", exc.description, needed) from None
        except InsufficientScope as exc:
            raise refuse(403, "insufficient_scope", exc.description, exc.required) from None
        except UpstreamError as exc:
            raise HTTPException(status_code=502, detail=exc.description) from None

    return verified_token

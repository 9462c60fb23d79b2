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

import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from fastapi.security import SecurityScopes
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from mcp_oauth_shim import OAuthShim
    from mcp_oauth_shim.protect import BearerRefusal


def bearer_token(shim: OAuthShim) -> Callable[[SecurityScopes, Request], Awaitable[AccessToken]]:
    """A dependency returning the verified `AccessToken` of the request (use with `Security`).

    The decision is the shim's own (`RequireBearer.authenticate`, with the route's scopes), so a
    route refuses exactly what the MCP endpoint refuses, with the same status and challenge:
    400 `invalid_request` for a malformed `Authorization` (two headers, not one token), 401
    without a token or with a bad one, 403 `insufficient_scope`, 502/504 when the IdP cannot be
    reached. Only the body is FastAPI's (`{"detail": "<error_description>"}`).
    """
    from mcp_oauth_shim.protect import BearerRefusal, RequireBearer

    @functools.lru_cache(maxsize=64)  # one gate per distinct set of route scopes (code, not requests)
    def gate(scopes: tuple[str, ...]) -> RequireBearer:
        return RequireBearer(_never_called, shim.verifier, scopes=scopes)

    async def verified_token(security_scopes: SecurityScopes, request: Request) -> AccessToken:
        try:
            return await gate(tuple(security_scopes.scopes)).authenticate(request.scope)
        except BearerRefusal as refused:
            raise _as_http_exception(refused) from None

    return verified_token


def _as_http_exception(refused: BearerRefusal) -> HTTPException:
    """FastAPI's form of the shim's answer: same status and headers, the description as detail."""
    response = refused.response
    try:
        description = json.loads(bytes(response.body)).get("error_description", "")
    except ValueError:
        description = ""
    headers = {name: response.headers[name] for name in ("www-authenticate", "cache-control") if name in response.headers}
    return HTTPException(status_code=response.status_code, detail=description, headers=headers or None)


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    """The gate's wrapped app: only `authenticate` is used, the gate never forwards."""
    raise RuntimeError("bearer_token's gate is not an ASGI middleware")

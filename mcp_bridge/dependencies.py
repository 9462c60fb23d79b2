"""FastAPI dependencies that check the shim's bearer tokens and scopes on ordinary routes.

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

A route that needs to know who calls asks for the :class:`~mcp_oauth_shim.caller.Caller`
instead (`verified_caller`), and a route that calls the IdP's own API for that user asks for the
IdP's access token (`upstream_token`); both check the token and scopes the same way:

    caller = verified_caller(shim)

    @app.get("/me")
    def me(user: Annotated[Caller, Security(caller, scopes=["profile"])]) -> dict[str, str | None]:
        return {"sub": user.subject, "email": user.email}
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from fastapi.security import SecurityScopes
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from mcp_oauth_shim import OAuthShim
    from mcp_oauth_shim.caller import Caller

__all__ = ["bearer_token", "upstream_token", "verified_caller"]


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
            raise _as_http_exception(refused.response) from None

    return verified_token


def verified_caller(shim: OAuthShim) -> Callable[[SecurityScopes, Request], Awaitable[Caller]]:
    """A dependency returning the verified :class:`~mcp_oauth_shim.caller.Caller` (use with `Security`).

    Who calls (subject, name, email, username), with which client and scopes, from the token
    of the request's own `Authorization` header: a tool call through the bridge carries the
    MCP client's header to the route (keep `"authorization"` in the bridge's
    `forward_headers`, the default), a plain HTTP call its own. The same check and refusals as
    :func:`bearer_token`; the verifier's cache makes the bridge's second look a lookup.
    """
    from mcp_oauth_shim.caller import Caller

    verified = bearer_token(shim)

    async def caller(security_scopes: SecurityScopes, request: Request) -> Caller:
        return Caller.from_access_token(await verified(security_scopes, request))

    return caller


def upstream_token(shim: OAuthShim) -> Callable[[SecurityScopes, Request], Awaitable[str]]:
    """A dependency returning the IdP's access token of the caller, to call the IdP's own API.

    With issued tokens, the IdP token the shim's token carries, decrypted for this request
    only; in passthrough mode the bearer token itself (it is the IdP's). Refusals, besides
    those of :func:`bearer_token` (RFC 6750 §3.1): 401 `invalid_token` when the carried token
    can no longer be opened (the shim's keys rotated: signing in again helps), 403
    `insufficient_scope` when the token carries none (a machine client's token). No token
    ever appears in a refusal.
    """
    from mcp_oauth_shim.caller import UpstreamTokenUnavailable
    from mcp_oauth_shim.rfc6750 import bearer_error_response

    caller = verified_caller(shim)

    async def idp_access_token(security_scopes: SecurityScopes, request: Request) -> str:
        verified = await caller(security_scopes, request)
        try:
            return verified.upstream_access_token()
        except UpstreamTokenUnavailable as unavailable:
            # The RFC 6750 §3 refusal for a token without a usable IdP token inside.
            refusal = bearer_error_response(
                error=unavailable.error,
                error_description=unavailable.description,
                resource_metadata=shim.resource_metadata_url,
                status_code=unavailable.status_code,
            )
            raise _as_http_exception(refusal) from None

    return idp_access_token


def _as_http_exception(response: Response) -> HTTPException:
    """FastAPI's form of a shim's RFC 6750 answer: same status and headers, the description as detail."""
    try:
        description = json.loads(bytes(response.body)).get("error_description", "")
    except ValueError:
        description = ""
    headers = {name: response.headers[name] for name in ("www-authenticate", "cache-control") if name in response.headers}
    return HTTPException(status_code=response.status_code, detail=description, headers=headers or None)


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    """The gate's wrapped app: only `authenticate` is used, the gate never forwards."""
    raise RuntimeError("bearer_token's gate is not an ASGI middleware")

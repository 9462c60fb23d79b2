"""Tokens from the IdP's token endpoint, relayed to the MCP client (RFC 6749 §5.1, §5.2).

The grants that proxy the IdP (authorization code, refresh token) end the same way: the IdP is
called with the shim's own client and the resource's audience parameters (RFC 8707), its
answer is checked, the refresh token is sealed and bound to the client it was issued to
(:class:`..payloads.RefreshToken`), and the ID token (issued to the shim, not to the client) is
dropped. The IdP's errors are seen from the client's side: errors about the grant are relayed,
errors about the shim's own credentials become ``server_error`` for the operator to fix.

In strict mode every answer carries a sealed refresh token with a family and a token id
(:class:`..strict.checks.RefreshLineage`): a login starts a family, a refresh continues its
own, wrapping the IdP's new refresh token or, when the IdP did not rotate, its previous one.

GitHub answers token errors with status 200 and an ``error`` member; such an answer is read as
the error it is (:data:`GITHUB_ERRORS` names GitHub's codes in RFC 6749 §5.2 terms), never as
tokens. In issued-token mode the grants take the IdP's checked answer
(:meth:`UpstreamTokenExchange.request_tokens`) and issue the shim's own tokens instead
(:mod:`..issuing`).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response

from .. import jsonsafe
from ..clients import Client
from ..context import ShimContext
from ..endpoints.base import no_store_json
from ..errors import OAuth2Error, oauth_error
from ..payloads import RefreshToken
from ..rfc8707 import audience_params
from ..strict.checks import RefreshLineage, start_refresh_family

__all__ = ["UpstreamGrant", "UpstreamTokenExchange", "map_upstream_error"]

logger = logging.getLogger("mcp_oauth_shim.endpoints.token")

# IdP errors that are about the client's grant, relayed as they are (RFC 6749 §5.2, RFC 8707).
CLIENT_ERRORS = {"invalid_grant", "invalid_scope", "invalid_target", "invalid_request"}
PASSED_FIELDS = ("access_token", "token_type", "expires_in", "scope")
# GitHub's token errors ("Troubleshooting OAuth app access token request errors"), as RFC 6749
# §5.2 codes: a bad, expired or used code or refresh token is the client's grant; wrong
# client credentials are the shim's configuration.
GITHUB_ERRORS = {
    "bad_verification_code": "invalid_grant",
    "bad_refresh_token": "invalid_grant",
    "incorrect_client_credentials": "invalid_client",
    "unverified_user_email": "invalid_grant",
}


class UpstreamTokenExchange:
    """Posts a token request to the IdP and answers the MCP client with the result."""

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx
        self._audience = audience_params(ctx.upstream, ctx.resource)

    async def exchange(
        self,
        upstream_form: dict[str, str],
        client: Client | None,
        granted: str,
        *,
        lineage: RefreshLineage | None = None,
        refresh_scope: str | None = None,
    ) -> Response:
        """The IdP's answer to ``upstream_form`` (audience added), as the client's token response;
        its refusals raised as :class:`OAuth2Error` (:meth:`request_tokens`).

        ``granted`` is the scope the shim knows was granted, reported when the IdP names none
        (RFC 6749 §5.1: an absent ``scope`` means the requested one) and sealed into the
        refresh token for later refreshes (RFC 6749 §6). ``lineage``: in strict mode, what the
        next refresh token of a refreshed family carries (a login starts a new family).
        ``refresh_scope``: the scope the next refresh token keeps when it is not the answer's;
        RFC 6749 §6: a refresh that narrows the scope narrows the access token only, the new
        refresh token has the scope of the one presented.
        ``client`` is ``None`` for the ``client_credentials`` grant, which answers no refresh
        token (RFC 6749 §4.4.3): the IdP's is dropped, like its ID token.
        """
        ctx = self.ctx
        body = await self.request_tokens(upstream_form)
        answer: dict[str, Any] = {k: body[k] for k in PASSED_FIELDS if k in body}
        answer["token_type"] = "Bearer"
        if isinstance(answer.get("scope"), str):
            answer["scope"] = ctx.upstream.client_scope(answer["scope"])
        if "scope" not in answer and granted:
            answer["scope"] = granted
        if client is None:
            return no_store_json(jsonsafe.dumps(answer))
        refresh = body.get("refresh_token")
        if lineage is None:
            lineage = start_refresh_family(ctx.strict)
        if not (isinstance(refresh, str) and refresh) and lineage is not None:
            refresh = lineage.upstream_refresh_token  # the IdP did not rotate: keep its token
        if isinstance(refresh, str) and refresh:
            scope = answer.get("scope", granted) if refresh_scope is None else refresh_scope
            sealed_scope = scope if isinstance(scope, str) else granted  # an IdP's odd scope is not kept
            family, token_id = (lineage.family, lineage.token_id) if lineage is not None else (None, None)
            answer["refresh_token"] = RefreshToken(refresh, client.fingerprint, sealed_scope, family, token_id).seal(ctx.sealer)
        return no_store_json(jsonsafe.dumps(answer))


    async def request_tokens(self, upstream_form: dict[str, str]) -> dict[str, Any]:
        """The IdP's token response to ``upstream_form`` (audience added), with a non-empty
        ``access_token``; its errors as :class:`OAuth2Error` (:func:`map_upstream_error`)."""
        ctx = self.ctx
        upstream_form.update(self._audience)
        metadata = await ctx.upstream_client.metadata()
        status, body = await ctx.upstream_client.post_form(metadata.token_endpoint, upstream_form)
        if status == 200 and "error" in body and "access_token" not in body:
            status = 400  # GitHub: errors come with 200
        if status != 200:
            raise map_upstream_error(status, body)
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise oauth_error("server_error", "The identity provider returned no access token.", 502)
        return body


class UpstreamGrant:
    """What the grants answered through the IdP (``authorization_code``, ``refresh_token``)
    share: every configuration serves them, each with its own :class:`UpstreamTokenExchange`
    and, in issued-token mode, the shim's own tokens (:mod:`.issued_tokens`)."""

    @staticmethod
    def offered(ctx: ShimContext) -> bool:
        return True

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx
        self._upstream = UpstreamTokenExchange(ctx)
        self._issued = ctx.issued


def map_upstream_error(status: int, body: dict[str, Any]) -> OAuth2Error:
    """RFC 6749 §5.2 errors from the IdP, seen from the MCP client's side."""
    error = body.get("error") if isinstance(body.get("error"), str) else None
    if error in GITHUB_ERRORS and 400 <= status < 500:
        error = GITHUB_ERRORS[error]
    description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
    if error in CLIENT_ERRORS and 400 <= status < 500:
        return oauth_error(error, description or "The identity provider refused the grant.", 400)
    if error in ("invalid_client", "unauthorized_client", "unsupported_grant_type"):
        # The shim's own credentials or configuration are wrong: the operator must act.
        logger.error("identity provider refused the shim's client (%s): check client_id/client_secret", error)
        return oauth_error("server_error", "The identity provider refused this server's credentials.", 502)
    logger.warning("identity provider token error: status %s error %s", status, (error or "")[:40])
    return oauth_error("server_error", "The identity provider could not complete the request.", 502)

"""``POST /oauth/token``: the authorization_code and refresh_token grants, proxied.

Everything the client presents is checked here before the IdP is called (RFC 6749 §4.1.3,
RFC 7636 §4.6, RFC 8707 §2.2); then the IdP is called with the shim's own callback URI and
client secret. The IdP's tokens are returned as they are, except that the refresh token is
wrapped and bound to the client it was issued to, and the ID token (issued to the shim, not
to the client) is dropped.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.requests import Request
from starlette.responses import Response

from ..clients import Client, authenticate_client, presented_credentials
from ..context import ShimContext
from ..errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
    invalid_target,
    json_error,
    oauth_error,
)
from ..rfc8707 import audience_params, resource_matches
from ..sealing import CODE, REFRESH, SealError
from ..upstream import UpstreamError
from .base import ParameterError, no_store_json, parse_form, read_body_limited

logger = logging.getLogger(__name__)

MAX_TOKEN_BODY = 64 * 1024
# RFC 7636 §4.1: 43-128 characters from the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# IdP errors that are about the client's grant, relayed as they are (RFC 6749 §5.2, RFC 8707).
_CLIENT_ERRORS = {"invalid_grant", "invalid_scope", "invalid_target", "invalid_request"}
_PASSED_FIELDS = ("access_token", "token_type", "expires_in", "scope")
# ensure_ascii: whatever the IdP sent (lone surrogates included) can be encoded. Built once:
# json.dumps makes an encoder per call.
_encode_json = json.JSONEncoder().encode


class TokenHandler:
    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx
        self._audience = audience_params(ctx.upstream, ctx.resource)

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except OAuth2Error as err:
            return json_error(err)
        except UpstreamError as err:
            return json_error(oauth_error(err.error, err.description, err.status_code))

    async def _handle(self, request: Request) -> Response:
        form = await _read_token_request(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequestError(description="grant_type is required.")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise UnsupportedGrantTypeError(grant_type[:60])
        credentials = presented_credentials(form, request.headers.get("authorization"))
        client = await authenticate_client(
            self.ctx.clients, credentials, static_secret=self.ctx.upstream.client_secret
        )
        resource = form.get("resource")
        if resource is not None and not resource_matches(resource, self.ctx.resource):
            raise invalid_target(f"This server only issues tokens for {self.ctx.resource}.")
        if grant_type == "authorization_code":
            upstream_form, granted = self._code_grant(form, client)
        else:
            upstream_form, granted = self._refresh_grant(form, client)
        upstream_form.update(self._audience)
        return await self._exchange(upstream_form, client, granted)

    def _code_grant(self, form: dict[str, str], client: Client) -> tuple[dict[str, str], str]:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise InvalidRequestError(description="code is required.")
        if not verifier:
            raise InvalidRequestError(description="code_verifier is required (PKCE).")
        if not _VERIFIER.match(verifier):
            raise InvalidGrantError(description="code_verifier is malformed (RFC 7636 section 4.1).")
        try:
            sealed = self.ctx.sealer.unseal(CODE, code, max_age=self.ctx.lifetimes.code)
        except SealError as exc:
            raise InvalidGrantError(description=f"The authorization code is {exc.reason}.")
        if not hmac.compare_digest(sealed["c"], client.fingerprint):
            raise InvalidGrantError(description="The authorization code was issued to another client.")
        redirect_uri = form.get("redirect_uri")
        if sealed.get("rg", 1):
            if redirect_uri != sealed["r"]:
                raise InvalidGrantError(description="redirect_uri does not match the authorization request.")
        elif redirect_uri is not None and redirect_uri != sealed["r"]:
            raise InvalidGrantError(description="redirect_uri does not match the authorization request.")
        if not hmac.compare_digest(create_s256_code_challenge(verifier), sealed["cc"]):
            raise InvalidGrantError(description="code_verifier does not match the code_challenge.")
        upstream_form = {
            "grant_type": "authorization_code",
            "code": sealed["u"],
            "redirect_uri": self.ctx.callback_url,
            "code_verifier": verifier,
        }
        return upstream_form, sealed["sc"]

    def _refresh_grant(self, form: dict[str, str], client: Client) -> tuple[dict[str, str], str]:
        token = form.get("refresh_token")
        if not token:
            raise InvalidRequestError(description="refresh_token is required.")
        try:
            sealed = self.ctx.sealer.unseal(REFRESH, token, max_age=self.ctx.lifetimes.refresh_token)
        except SealError as exc:
            raise InvalidGrantError(description=f"The refresh token is {exc.reason}.")
        if not hmac.compare_digest(sealed["c"], client.fingerprint):
            raise InvalidGrantError(description="The refresh token was issued to another client.")
        granted = sealed.get("sc", "")
        upstream_form = {"grant_type": "refresh_token", "refresh_token": sealed["u"]}
        scope = form.get("scope")
        if scope and not scope.isspace():
            _check_refresh_scope(scope, granted)
            upstream_form["scope"] = self.ctx.upstream.upstream_scope(scope)
            granted = scope
        return upstream_form, granted

    async def _exchange(self, upstream_form: dict[str, str], client: Client, granted: str) -> Response:
        ctx = self.ctx
        metadata = await ctx.upstream_client.metadata()
        status, body = await ctx.upstream_client.post_form(metadata.token_endpoint, upstream_form)
        if status != 200:
            return json_error(_map_upstream_error(status, body))
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            return json_error(oauth_error("server_error", "The identity provider returned no access token.", 502))
        answer: dict[str, Any] = {k: body[k] for k in _PASSED_FIELDS if k in body}
        answer["token_type"] = "Bearer"
        if "scope" not in answer and granted:
            answer["scope"] = granted
        refresh = body.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            answer["refresh_token"] = ctx.sealer.seal(
                REFRESH, {"u": refresh, "c": client.fingerprint, "sc": answer.get("scope", granted)}
            )
        return no_store_json(_encode_json(answer).encode())


async def _read_token_request(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequestError(description="The token request must be application/x-www-form-urlencoded.")
    body = await read_body_limited(request, MAX_TOKEN_BODY)
    if body is None:
        raise InvalidRequestError(description="The token request is too large.")
    try:
        form = parse_form(body)
    except ParameterError as exc:
        raise InvalidRequestError(description=exc.description)
    return form


def _check_refresh_scope(requested: str, granted: str) -> None:
    """RFC 6749 §6: the scope of a refresh "MUST NOT include any scope not originally granted".

    ``granted`` is what the shim knows was granted: the scope the IdP reported, or else the
    scope the shim asked for (RFC 6749 §5.1: an absent ``scope`` means the requested one). It is
    empty only when the shim asked for no scope and the IdP reported none: the IdP applied its
    own defaults (RFC 6749 §3.3), which the shim cannot see. Nothing requested can be shown to
    be within such a grant, so every requested scope is refused; the client may refresh without
    ``scope`` and keep whatever the IdP granted. Relying on the IdP to refuse would not do:
    some let a refresh token obtain any scope the user ever consented to.
    """
    asked = set(requested.split())
    if not granted:
        raise InvalidScopeError(
            description="The original grant named no scope: refresh without the scope parameter."
        )
    if not asked <= set(granted.split()):
        raise InvalidScopeError(description="A refresh may not ask for scopes beyond the original grant.")


def _map_upstream_error(status: int, body: dict[str, Any]) -> OAuth2Error:
    """RFC 6749 §5.2 errors from the IdP, seen from the MCP client's side."""
    error = body.get("error") if isinstance(body.get("error"), str) else None
    description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
    if error in _CLIENT_ERRORS and 400 <= status < 500:
        return oauth_error(error, description or "The identity provider refused the grant.", 400)
    if error in ("invalid_client", "unauthorized_client", "unsupported_grant_type"):
        # The shim's own credentials or configuration are wrong: the operator must act.
        logger.error("identity provider refused the shim's client (%s): check client_id/client_secret", error)
        return oauth_error("server_error", "The identity provider refused this server's credentials.", 502)
    logger.warning("identity provider token error: status %s error %s", status, (error or "")[:40])
    return oauth_error("server_error", "The identity provider could not complete the request.", 502)

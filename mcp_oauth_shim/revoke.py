"""``POST /oauth/revoke``: RFC 7009 token revocation, forwarded to the IdP's endpoint.

Wrapped refresh tokens are unwrapped (and must belong to the calling client); access tokens are
the IdP's own and are forwarded as they are. Per RFC 7009 §2.2 an unknown or invalid token is
not an error: the answer is 200 either way.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import Response

from .clients import authenticate_client, presented_credentials
from .context import ShimContext
from .errors import NO_STORE, InvalidRequestError, OAuth2Error, json_error, oauth_error
from .http import ParameterError, parse_form, read_body_limited
from .sealing import REFRESH, SealError, digest
from .upstream import UpstreamError

logger = logging.getLogger("mcp_oauth_shim.revoke")


class RevocationHandler:
    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except OAuth2Error as err:
            return json_error(err)

    async def _handle(self, request: Request) -> Response:
        ctx = self.ctx
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise InvalidRequestError(description="The revocation request must be form-encoded.")
        body = await read_body_limited(request, 64 * 1024)
        if body is None:
            raise InvalidRequestError(description="The revocation request is too large.")
        try:
            form = parse_form(body)
        except ParameterError:
            raise InvalidRequestError(description="The revocation request body is malformed.")
        token = form.get("token")
        if not token:
            raise InvalidRequestError(description="token is required.")
        credentials = presented_credentials(form, request.headers.get("authorization"))
        client = await authenticate_client(ctx.clients, credentials, static_secret=ctx.upstream.client_secret)
        client_id = client.client_id
        upstream_form = {"token": token}
        try:
            sealed = ctx.sealer.unseal(REFRESH, token, max_age=ctx.lifetimes.refresh_token)
        except SealError:
            if form.get("token_type_hint") == "access_token":
                upstream_form["token_type_hint"] = "access_token"
        else:
            if not hmac.compare_digest(sealed["c"], digest(client_id)):
                logger.info("revocation of another client's refresh token ignored")
                return Response(status_code=200, headers=NO_STORE)
            upstream_form = {"token": sealed["u"], "token_type_hint": "refresh_token"}
        try:
            metadata = await ctx.upstream_client.metadata()
            if not metadata.revocation_endpoint:
                raise InvalidRequestError(description="The identity provider offers no revocation.")
            status, body = await ctx.upstream_client.post_form(metadata.revocation_endpoint, upstream_form)
        except UpstreamError as err:
            # RFC 7009 §2.2.1: 503 tells the client to retry later.
            return json_error(oauth_error("temporarily_unavailable", err.description, 503))
        if status >= 500:
            return json_error(oauth_error("temporarily_unavailable", "The identity provider could not revoke now.", 503))
        error = body.get("error") if status >= 400 else None
        if error in ("invalid_client", "unauthorized_client"):
            # The shim's own credentials are wrong: the operator must act, the client cannot.
            logger.error("identity provider refused the shim's client at revocation (%s)", error)
            return json_error(oauth_error("server_error", "The identity provider refused this server's credentials.", 502))
        if error == "unsupported_token_type":
            return json_error(oauth_error("unsupported_token_type", "The identity provider cannot revoke this token."))
        if error:
            logger.warning("identity provider revocation answered %s %s", status, str(error)[:40])
        return Response(status_code=200, headers=NO_STORE)

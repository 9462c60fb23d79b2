"""``POST /oauth/revoke``: RFC 7009 token revocation, forwarded to the IdP only for our tokens.

Registration is stateless, so anyone can mint a client_id in one request; were every revocation
forwarded, anyone could make the shim send authenticated requests to the IdP at will. A token is
therefore forwarded only when it is one the calling client may revoke:

* a refresh token the shim sealed and bound to this client: the IdP's refresh token inside it
  is what the IdP is asked to revoke;
* an access token that verifies locally (signature against the IdP's cached keys, issuer,
  audience = this resource, lifetime, the IdP's access-token profile; an opaque token only when
  a recent introspection accepted it) and that the IdP issued to the shim's own client. The
  IdP's access tokens do not say which MCP client holds them (every client is served by the
  shim's one upstream client), so holding one is the proof: revoking it takes nothing from
  anyone but its holder.

In issued-token mode the shim's own tokens are the ones clients hold:

* the shim's refresh token, when issued to the calling client: the IdP's refresh token
  encrypted inside is decrypted and sent to the IdP's revocation endpoint; a refresh token
  that carries only the IdP's access token (an IdP that gave no refresh token) sends that
  access token instead, since it is what the next refresh re-checks at the IdP (GitHub has no
  revocation endpoint: nothing is sent);
* the shim's access token: accepted with 200 and nothing forwarded. It is a self-contained
  JWT and the shim keeps no list of revoked ones, so it stays valid until its ``exp`` (at most
  :attr:`.config.Lifetimes.access_token`); the refresh token, once revoked at the IdP, no
  longer renews it.

The operator's machine clients authenticate as at the token endpoint (RFC 7009 §2.1: secret or
RFC 7523 client assertion, its ``jti`` single-use across both endpoints). They hold no refresh
tokens, only access tokens: the shim's (issued-token mode), accepted with 200 and nothing
forwarded, like a user's; or the IdP's client credentials token (``mode="upstream"``), which the
IdP issued to the shim's own client and is forwarded exactly as above.

Everything else is answered 200 without a request to the IdP: RFC 7009 §2.2, "invalid tokens
do not cause an error response since the client cannot handle such an error in a reasonable
way", and the same holds for another client's refresh token (§2.1: the server checks that the
token was issued to the client asking). Client authentication problems still get RFC 6749 §5.2
``invalid_client``.

In strict mode revoking one of the shim's refresh tokens also revokes its family (every token
rotated from the same login), so a stolen copy of it, or of an older or newer token of that
login, is refused too; when the strict-mode store cannot answer the revocation is 503.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..clients import Client, authenticate_client, presented_credentials
from ..context import ShimContext
from ..errors import NO_STORE, InvalidRequestError, OAuth2Error, json_error, oauth_error
from ..machine_access import revoking_machine_client
from ..media_types import FORM, is_media_type
from ..payloads import RefreshToken
from ..sealing import SealError
from ..strict import StrictModeUnavailable
from ..strict.answers import unavailable_response
from ..strict.checks import revoke_refresh_family
from ..upstream import UpstreamError
from .base import ParameterError, header, omitting_blank, parse_form, read_body_limited

if TYPE_CHECKING:
    from ..issuing import IssuedMode
    from ..machine_clients import MachineClient
    from ..verify import BearerVerifier

logger = logging.getLogger(__name__)

MAX_REVOCATION_BODY = 64 * 1024


class RevocationHandler:
    """The revocation endpoint.

    ``verifier`` gives the verifier that recognises access tokens for this resource; it is
    called on the first revocation that needs it, so that serving the shim's endpoints alone
    does not load the JWT stack.
    """

    def __init__(self, ctx: ShimContext, verifier: Callable[[], BearerVerifier]) -> None:
        self.ctx = ctx
        self._verifier = verifier

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except OAuth2Error as err:
            return json_error(err)
        except StrictModeUnavailable as exc:
            return unavailable_response(exc)

    async def _handle(self, request: Request) -> Response:
        ctx = self.ctx
        if not is_media_type(header(request, b"content-type"), FORM):
            raise InvalidRequestError(description="The revocation request must be form-encoded.")
        raw = await read_body_limited(request, MAX_REVOCATION_BODY)
        if raw is None:
            raise InvalidRequestError(description="The revocation request is too large.")
        try:
            form = omitting_blank(parse_form(raw))  # as at the token endpoint (RFC 6749 §3.2)
        except ParameterError:
            raise InvalidRequestError(description="The revocation request body is malformed.") from None
        token = form.get("token")
        if not token:
            raise InvalidRequestError(description="token is required.")
        authorization = header(request, b"authorization")
        try:
            # Inside the try: a key client's jwks_uri that cannot be fetched is 503, as the IdP's keys are.
            machine = await revoking_machine_client(ctx, form, authorization)
            if machine is not None:
                upstream_form = await self._machine_upstream_form(token, machine)
            else:
                credentials = presented_credentials(form, authorization)
                client = await authenticate_client(ctx.clients, credentials, static_secret=ctx.upstream.client_secret)
                upstream_form = await self._upstream_form(token, client)
            if upstream_form is None:
                return Response(status_code=200, headers=NO_STORE)
            metadata = await ctx.upstream_client.metadata()
            if not metadata.revocation_endpoint:
                raise InvalidRequestError(description="The identity provider offers no revocation.")
            status, body = await ctx.upstream_client.post_form(metadata.revocation_endpoint, upstream_form)
        except UpstreamError as err:
            # RFC 7009 §2.2.1: 503 tells the client to retry later.
            return json_error(oauth_error("temporarily_unavailable", err.description, 503), headers=err.headers)
        if status >= 500:
            return json_error(oauth_error("temporarily_unavailable", "The identity provider could not revoke now.", 503))
        error = body.get("error") if status >= 400 else None
        if error in ("invalid_client", "unauthorized_client"):
            # The shim's own credentials are wrong: the operator must act, the client cannot.
            logger.error("identity provider refused the shim's client at revocation (%s)", error)
            return json_error(oauth_error("server_error", "The identity provider refused this server's credentials.", 502))
        if error == "unsupported_token_type" and ctx.issued is None:
            # The client's token is the IdP's: it is the one the IdP cannot revoke. In issued-token
            # mode the client sent the shim's refresh token, a type the shim supports; the IdP's
            # token inside (an access token, which IdPs need not revoke) is logged below.
            return json_error(oauth_error("unsupported_token_type", "The identity provider cannot revoke this token."))
        if error:
            logger.warning("identity provider revocation answered %s %s", status, str(error)[:40])
        return Response(status_code=200, headers=NO_STORE)

    async def _upstream_form(self, token: str, client: Client) -> dict[str, str] | None:
        """What to send the IdP's revocation endpoint for ``token``, or ``None``: nothing to send.

        Raises :class:`UpstreamError` when the IdP's keys are needed and cannot be fetched.
        """
        if self.ctx.issued is not None:
            return await self._issued_upstream_form(token, client, self.ctx.issued)
        try:
            refresh = RefreshToken.open(self.ctx.sealer, token, max_age=self.ctx.lifetimes.refresh_token)
        except SealError:
            pass
        else:
            if hmac.compare_digest(refresh.client_fingerprint, client.fingerprint):
                await revoke_refresh_family(self.ctx.strict, refresh.family, token, self.ctx.lifetimes.refresh_token)
                return {"token": refresh.upstream_refresh_token, "token_type_hint": "refresh_token"}
            logger.info("revocation of another client's refresh token ignored")
            return None
        return await self._access_token_form(token)

    async def _machine_upstream_form(self, token: str, client: MachineClient) -> dict[str, str] | None:
        """A machine client's revocation: it holds no refresh token (RFC 6749 §4.4.3), so only an
        access token can be its own. The shim's (issued-token mode) is a self-contained JWT:
        nothing to send, it stays valid until its ``exp``. The IdP's (``mode="upstream"``) is
        sent as any access token the IdP issued to the shim's client is."""
        if self.ctx.issued is not None:
            logger.info("revocation by machine client %s without a request to the identity provider", client.client_id)
            return None
        return await self._access_token_form(token)

    async def _access_token_form(self, token: str) -> dict[str, str] | None:
        """``token`` for the IdP if it is an access token for this resource that the IdP issued
        to the shim's own client (verified locally), else ``None``."""
        from ..verify import InvalidToken, token_client  # the JWT stack, loaded on first use

        verifier = self._verifier()
        try:
            access = await verifier.verify_locally(token)
        except InvalidToken:
            logger.info("revocation of a token that is not an access token for this resource ignored")
            return None
        holder = token_client(access.claims or {}, verifier.profile)
        if holder is not None and holder != self.ctx.upstream.client_id:
            logger.info("revocation of an access token issued to another client of the IdP ignored")
            return None
        return {"token": token, "token_type_hint": "access_token"}

    async def _issued_upstream_form(self, token: str, client: Client, issued: IssuedMode) -> dict[str, str] | None:
        """Issued-token mode: the IdP's refresh token inside the shim's, for its own client (in
        strict mode the shim's refresh-token family is revoked too)."""
        from ..issued_refresh import RefreshTokenError, open_refresh_token

        ctx = self.ctx
        try:
            refresh = open_refresh_token(
                ctx.sealer, issued.cipher, token, client=client.fingerprint, resource=ctx.resource, max_age=ctx.lifetimes.refresh_token
            )
        except RefreshTokenError as exc:
            # An access token of ours (valid until exp), another client's token, or garbage.
            logger.info("revocation without a request to the identity provider: %s", exc.reason)
            return None
        await revoke_refresh_family(ctx.strict, refresh.family, token, ctx.lifetimes.refresh_token)
        if refresh.upstream_refresh_token is not None:
            return {"token": refresh.upstream_refresh_token, "token_type_hint": "refresh_token"}
        # Without the IdP's refresh token, its access token is what a refresh re-checks at the
        # IdP: revoked there, the next refresh fails. An IdP with no revocation endpoint (GitHub)
        # cannot be asked; only strict mode's family revocation then ends the session.
        if refresh.upstream_access_token is None or not (await ctx.upstream_client.metadata()).revocation_endpoint:
            logger.info("revocation of a refresh token whose identity provider token cannot be revoked there")
            return None
        return {"token": refresh.upstream_access_token, "token_type_hint": "access_token"}

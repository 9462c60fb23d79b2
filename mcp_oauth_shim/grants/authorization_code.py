"""The ``authorization_code`` grant (RFC 6749 §4.1.3), with PKCE (RFC 7636 §4.5, §4.6).

Everything the client presents is checked against the sealed code before the IdP is called:
the code was issued to this client, the redirect URI is the one of the authorization request,
and the verifier matches the challenge. Then the IdP's own code is exchanged with the shim's
callback URI and the same verifier (the shim passed the client's challenge to the IdP).
In strict mode the code is then spent, once across replicas, before the IdP is called: a
replayed code never reaches the IdP.
In issued-token mode the client then gets the shim's own tokens (:mod:`.issued_tokens`).
"""

from __future__ import annotations

import hmac
import re
from typing import ClassVar

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.responses import Response

from ..clients import Client
from ..errors import InvalidGrantError, InvalidRequestError
from ..log_context import bind_login
from ..payloads import AuthorizationCode
from ..sealing import SealError
from ..strict.checks import first_use
from .issued_tokens import issue_after_code
from .upstream_exchange import UpstreamGrant

__all__ = ["AuthorizationCodeGrant"]

# RFC 7636 §4.1: 43-128 characters from the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class AuthorizationCodeGrant(UpstreamGrant):
    grant_type: ClassVar[str] = "authorization_code"

    async def respond(self, form: dict[str, str], client: Client) -> Response:
        code = self.validate(form, client)
        # Strict mode: RFC 6749 §4.1.2 "MUST NOT use the authorization code more than once".
        strict = self.ctx.strict
        if strict is not None and not await first_use(strict, "code", form["code"], self.ctx.lifetimes.code):
            raise InvalidGrantError(description="The authorization code was already used.")
        upstream_form = {
            "grant_type": "authorization_code",
            "code": code.upstream_code,
            "redirect_uri": self.ctx.callback_url,
            "code_verifier": form["code_verifier"],
        }
        if self._issued is not None:
            return await issue_after_code(self._upstream, self._issued, upstream_form, client, code.scope, code.nonce)
        return await self._upstream.exchange(upstream_form, client, code.scope)

    def validate(self, form: dict[str, str], client: Client) -> AuthorizationCode:
        """The sealed code, once the request proves it may redeem it; else the RFC 6749 §5.2 error."""
        sealed, verifier = form.get("code"), form.get("code_verifier")
        if not sealed:
            raise InvalidRequestError(description="code is required.")
        if not verifier:
            raise InvalidRequestError(description="code_verifier is required (PKCE).")
        if not _VERIFIER.match(verifier):
            raise InvalidGrantError(description="code_verifier is malformed (RFC 7636 section 4.1).")
        try:
            code = AuthorizationCode.open(self.ctx.sealer, sealed, max_age=self.ctx.lifetimes.code)
        except SealError as exc:
            raise InvalidGrantError(description=f"The authorization code is {exc.reason}.") from None
        bind_login(code.code_challenge)
        if not hmac.compare_digest(code.client_fingerprint, client.fingerprint):
            raise InvalidGrantError(description="The authorization code was issued to another client.")
        redirect_uri = form.get("redirect_uri")
        # RFC 6749 §4.1.3: required and identical when the authorization request had one.
        if (code.redirect_uri_given or redirect_uri is not None) and redirect_uri != code.redirect_uri:
            raise InvalidGrantError(description="redirect_uri does not match the authorization request.")
        if not hmac.compare_digest(create_s256_code_challenge(verifier), code.code_challenge):
            raise InvalidGrantError(description="code_verifier does not match the code_challenge.")
        return code

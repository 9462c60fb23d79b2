"""The ``refresh_token`` grant (RFC 6749 §6): the IdP's refresh token, unwrapped for its client.

The sealed refresh token must have been issued to the client presenting it; a ``scope`` may
only narrow what was originally granted. The IdP's refresh token is then exchanged, and the new
one it returns is sealed again (:mod:`.upstream_exchange`). In strict mode every refresh
token is used once (RFC 9700 §4.14.2): a second use revokes its family, and every refresh
issues a new sealed token of the same family, whether or not the IdP rotated its own.
In issued-token mode the refresh token is the shim's own (:mod:`.issued_tokens`).
"""

from __future__ import annotations

import hmac
from typing import ClassVar

from starlette.responses import Response

from ..clients import Client
from ..config import Upstream
from ..errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from ..payloads import RefreshToken
from ..sealing import SealError
from ..strict.checks import refresh_at_idp, use_refresh_token
from .issued_tokens import issue_after_refresh
from .upstream_exchange import UpstreamGrant

__all__ = ["RefreshTokenGrant", "refreshed_scope", "upstream_refresh_scope"]


class RefreshTokenGrant(UpstreamGrant):
    grant_type: ClassVar[str] = "refresh_token"

    async def respond(self, form: dict[str, str], client: Client) -> Response:
        sealed = form.get("refresh_token")
        if not sealed:
            raise InvalidRequestError(description="refresh_token is required.")
        scope = form.get("scope")
        if not scope or scope.isspace():
            scope = None
        if self._issued is not None:
            return await issue_after_refresh(self._upstream, self._issued, sealed, client, scope)
        try:
            token = RefreshToken.open(self.ctx.sealer, sealed, max_age=self.ctx.lifetimes.refresh_token)
        except SealError as exc:
            raise InvalidGrantError(description=f"The refresh token is {exc.reason}.") from None
        if not hmac.compare_digest(token.client_fingerprint, client.fingerprint):
            raise InvalidGrantError(description="The refresh token was issued to another client.")
        granted = token.scope
        upstream_form = {"grant_type": "refresh_token", "refresh_token": token.upstream_refresh_token}
        if scope is not None:
            granted = refreshed_scope(scope, granted)
            upstream_form["scope"] = upstream_refresh_scope(self.ctx.upstream, scope, token.scope)
        # Strict mode: reuse detection, before the IdP is called (None without strict mode).
        lineage = await use_refresh_token(self.ctx.strict, token, sealed, self.ctx.lifetimes.refresh_token)
        # RFC 6749 §6: the new refresh token keeps the scope of this one, narrowed or not.
        kept = token.scope if scope is not None else None
        exchange = self._upstream.exchange(upstream_form, client, granted, lineage=lineage, refresh_scope=kept)
        return await refresh_at_idp(self.ctx.strict, lineage, exchange)  # an IdP failure releases the use


def refreshed_scope(requested: str | None, granted: str) -> str:
    """The scope of a refresh's tokens: ``requested`` (``None``: not sent) once checked, else
    ``granted``. RFC 6749 §6: it "MUST NOT include any scope not originally granted".

    ``granted`` is what the shim knows was granted: the scope the IdP reported, or else the
    scope the shim asked for (RFC 6749 §5.1: an absent ``scope`` means the requested one). It is
    empty only when the shim asked for no scope and the IdP reported none: the IdP applied its
    own defaults (RFC 6749 §3.3), which the shim cannot see. Nothing requested can be shown to
    be within such a grant, so every requested scope is refused; the client may refresh without
    ``scope`` and keep whatever the IdP granted. Relying on the IdP to refuse would not do:
    some let a refresh token obtain any scope the user ever consented to.
    """
    if requested is None:
        return granted
    if not granted:
        raise InvalidScopeError(description="The original grant named no scope: refresh without the scope parameter.")
    if not set(requested.split()) <= set(granted.split()):
        raise InvalidScopeError(description="A refresh may not ask for scopes beyond the original grant.")
    return requested


def upstream_refresh_scope(upstream: Upstream, requested: str, granted: str) -> str:
    """The ``scope`` sent to the IdP for a refresh that names ``requested``: with those of the
    upstream's ``extra_scopes`` that the original grant holds kept, as every login asks for
    them. The client does not know the shim added them (``offline_access``); without it most
    IdPs issue no new refresh token, and a rotating one has spent the presented token, so
    narrowing would end the session."""
    kept = [s for s in upstream.extra_scopes if s in granted.split()]
    return upstream.upstream_scope(" ".join(dict.fromkeys([*requested.split(), *kept])))

"""How the grants that go through the IdP end in issued-token mode (:mod:`..issuing`).

Authorization code: the IdP's code is exchanged as in passthrough mode; the user is learned
from the IdP's answer (ID token with the login's ``nonce``, UserInfo, or GitHub's API); the
client gets the shim's access token and refresh token. Neither the IdP's tokens nor its ID
token reach the client; the IdP's refresh token (or, without one, its access token) travels
encrypted inside the shim's refresh token.

Refresh: the shim's refresh token is opened (bound to the client and resource); the IdP's
refresh token inside is redeemed at the IdP, or, when the IdP gave none (GitHub OAuth Apps),
the IdP's access token inside is checked again at the IdP (a revoked one ends the session with
``invalid_grant``); then new tokens are issued and the refresh token rotates.

The scope of the shim's tokens is the scope the client asked for and the person approved:
IdPs report granted scopes in their own vocabulary (Google answers ``email`` with
``https://www.googleapis.com/auth/userinfo.email``), which cannot be compared with the shim's.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from ..clients import Client
from ..errors import InvalidGrantError
from ..identity import UpstreamTokens
from ..issued_refresh import RefreshTokenError, open_refresh_token
from ..issuing import IssuedMode
from ..strict.checks import refresh_at_idp, start_refresh_family, use_refresh_token
from .upstream_exchange import UpstreamTokenExchange

__all__ = ["issue_after_code", "issue_after_refresh"]


async def issue_after_code(
    upstream: UpstreamTokenExchange, issued: IssuedMode, upstream_form: dict[str, str], client: Client, scope: str, nonce: str | None
) -> Response:
    """Redeem the IdP's code through ``upstream``, learn the user, answer with the shim's tokens."""
    body = await upstream.request_tokens(upstream_form)
    tokens = UpstreamTokens.from_response(body, nonce=nonce)
    identity = await issued.identity.resolve(tokens)
    return issued.tokens.issue(
        client_id=client.client_id,
        client_fingerprint=client.fingerprint,
        subject=identity.subject,
        scopes=scope,
        identity_claims=identity.token_claims(),
        upstream_access_token=tokens.access_token,
        upstream_refresh_token=_text(body.get("refresh_token")),
        auth_time=int(time.time()),
        lineage=start_refresh_family(upstream.ctx.strict),
    )


async def issue_after_refresh(
    upstream: UpstreamTokenExchange, issued: IssuedMode, sealed: str, client: Client, scope: str | None
) -> Response:
    """Redeem the shim's refresh token ``sealed`` (the IdP called through ``upstream``);
    ``scope`` may narrow the grant."""
    ctx = upstream.ctx
    try:
        refresh = open_refresh_token(
            ctx.sealer, issued.cipher, sealed, client=client.fingerprint, resource=ctx.resource, max_age=ctx.lifetimes.refresh_token
        )
    except RefreshTokenError as exc:
        raise InvalidGrantError(description=exc.reason) from None
    from .refresh_token import refreshed_scope, upstream_refresh_scope

    granted = refreshed_scope(scope, refresh.scope)
    lineage = await use_refresh_token(ctx.strict, refresh, sealed, ctx.lifetimes.refresh_token)
    identity_claims: dict[str, Any] = dict(refresh.identity_claims)
    if refresh.upstream_refresh_token is not None:
        form = {"grant_type": "refresh_token", "refresh_token": refresh.upstream_refresh_token}
        if scope is not None:
            form["scope"] = upstream_refresh_scope(ctx.upstream, scope, refresh.scope)
        body = await refresh_at_idp(ctx.strict, lineage, upstream.request_tokens(form))
        upstream_access = _text(body.get("access_token"))
        # An IdP that does not rotate its refresh token keeps the one it gave.
        upstream_refresh = _text(body.get("refresh_token")) or refresh.upstream_refresh_token
    elif refresh.upstream_access_token is not None:
        recheck = issued.identity.recheck(refresh.upstream_access_token, refresh.subject)
        identity = await refresh_at_idp(ctx.strict, lineage, recheck)
        # The re-check reads less (no /user/emails): what it does not say is kept.
        identity_claims.update(identity.token_claims())
        upstream_access, upstream_refresh = refresh.upstream_access_token, None
    else:
        raise InvalidGrantError(description="The refresh token can no longer be used; sign in again.")
    return issued.tokens.issue(
        client_id=client.client_id,
        client_fingerprint=client.fingerprint,
        subject=refresh.subject,
        scopes=granted,
        identity_claims=identity_claims,
        upstream_access_token=upstream_access,
        upstream_refresh_token=upstream_refresh,
        auth_time=refresh.auth_time,
        lineage=lineage,
        refresh_scope=refresh.scope,  # RFC 6749 §6: a narrowed refresh narrows the access token only
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

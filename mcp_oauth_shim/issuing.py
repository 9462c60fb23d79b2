"""The shim's own tokens in issued-token mode: what the token endpoint hands a client.

In issued-token mode the client never sees the IdP's tokens. Every grant that ends in tokens
(authorization code, refresh, and the machine grants) asks :class:`TokenIssuer` for

- an RFC 9068 access token signed with the shim's key (:mod:`.rfc9068`): ``iss`` the shim,
  ``aud`` the resource (RFC 8707), ``sub`` the user as the IdP names them, optionally the IdP's
  access token encrypted in ``upt`` for tools that call the IdP's API on the user's behalf;
- a refresh token of the shim's own (:mod:`.issued_refresh`), bound to the client and
  resource, carrying the IdP's refresh token encrypted, or (an IdP that issues none, such as
  GitHub OAuth Apps) the IdP's access token encrypted, to be checked again at each refresh;
- the RFC 6749 §5.1 token response holding both.

:class:`IssuedMode` bundles what issued-token mode builds once per shim (cipher, token issuer,
identity source); :attr:`.context.ShimContext.issued` holds it, ``None`` in passthrough mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from . import jsonsafe, rfc9068
from .encryption import TokenCipher
from .endpoints.base import no_store_json
from .errors import oauth_error
from .issued_refresh import MAX_REFRESH_TOKEN_LENGTH, IssuedRefresh, seal_refresh_token
from .sealing import Sealer
from .signing_keys import SigningKeys

if TYPE_CHECKING:
    from .identity_source import UpstreamIdentity
    from .strict.checks import RefreshLineage

__all__ = ["IssuedMode", "TokenIssuer"]


@dataclass(frozen=True, kw_only=True)
class TokenIssuer:
    """Mints the shim's access tokens and refresh tokens for one resource.

    ``access_token_lifetime`` is the access token's lifetime in seconds (RFC 6749 §5.1
    ``expires_in``). The IdP's access token, when there is one, goes into each access token
    encrypted (claim ``upt``) so tools can call the IdP's API for the user; the token grows by
    about 1.4 times the IdP token's length.
    """

    keys: SigningKeys
    cipher: TokenCipher
    sealer: Sealer
    issuer: str
    resource: str
    access_token_lifetime: int

    def __post_init__(self) -> None:
        if self.access_token_lifetime <= 0:
            raise ValueError("access_token_lifetime must be positive")
        object.__setattr__(self, "access_token_lifetime", int(self.access_token_lifetime))

    def access_token(
        self,
        *,
        client_id: str,
        subject: str,
        scopes: str | Iterable[str],
        identity_claims: Mapping[str, Any] | None = None,
        upstream_access_token: str | None = None,
        auth_time: int | None = None,
    ) -> str:
        """An RFC 9068 access token for the resource (signed, ``typ`` ``at+jwt``)."""
        return rfc9068.mint(
            self.keys,
            issuer=self.issuer,
            audience=self.resource,
            subject=subject,
            client_id=client_id,
            scopes=scopes,
            lifetime=self.access_token_lifetime,
            auth_time=auth_time,
            extra_claims=identity_claims,
            upstream_access_token=upstream_access_token,
            cipher=self.cipher,
        )

    def issue(
        self,
        *,
        client_id: str,
        subject: str,
        scopes: str | Iterable[str],
        client_fingerprint: str | None = None,
        identity_claims: Mapping[str, Any] | None = None,
        upstream_access_token: str | None = None,
        upstream_refresh_token: str | None = None,
        auth_time: int | None = None,
        lineage: RefreshLineage | None = None,
        refresh_scope: str | None = None,
    ) -> Response:
        """The token response (RFC 6749 §5.1) for ``subject``, never cached (``no-store``).

        ``identity_claims``: what the access token says about the user
        (:meth:`.identity.Identity.token_claims`, or the claims an earlier token carried, on
        refresh). ``client_fingerprint`` (:attr:`.clients.Client.fingerprint`): also issue a
        refresh token bound to that client; it carries ``upstream_refresh_token``, or, without
        one, ``upstream_access_token`` for a re-check at refresh time. A machine grant (RFC 6749
        §4.4.3: no refresh token) passes none. ``lineage``: in strict mode, the refresh token's
        family and new id (:mod:`.strict.checks`). ``refresh_scope``: the refresh token's
        scope when it is not ``scopes`` (RFC 6749 §6: a refresh that narrows the scope keeps the
        original one in the new refresh token). The answer never contains the IdP's tokens in
        clear.
        """
        scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        scope = " ".join(dict.fromkeys(scope.split()))
        claims = identity_claims or {}
        answer: dict[str, Any] = {
            "access_token": self.access_token(
                client_id=client_id,
                subject=subject,
                scopes=scope,
                identity_claims=claims,
                upstream_access_token=upstream_access_token,
                auth_time=auth_time,
            ),
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
        }
        if scope:
            answer["scope"] = scope
        if client_fingerprint:
            refresh = IssuedRefresh(
                client=client_fingerprint,
                resource=self.resource,
                subject=subject,
                scope=scope if refresh_scope is None else refresh_scope,
                upstream_refresh_token=upstream_refresh_token,
                # Without the IdP's refresh token, its access token is what a refresh re-checks.
                upstream_access_token=upstream_access_token if upstream_refresh_token is None else None,
                identity_claims=dict(claims),
                auth_time=auth_time,
                family=lineage.family if lineage is not None else None,
                token_id=lineage.token_id if lineage is not None else None,
            )
            answer["refresh_token"] = seal_refresh_token(self.sealer, self.cipher, refresh)
        _refuse_unusable(answer)
        return no_store_json(jsonsafe.dumps(answer))


@dataclass(frozen=True)
class IssuedMode:
    """What issued-token mode builds once per shim: the cipher for the IdP's tokens inside the
    shim's, the token issuer (whose signing keys the JWKS endpoint publishes), and where the
    user's identity comes from."""

    cipher: TokenCipher
    tokens: TokenIssuer
    identity: UpstreamIdentity


def _refuse_unusable(answer: Mapping[str, Any]) -> None:
    """A token the shim would refuse when it comes back is never issued. When the IdP's access
    token carried inside, or the user's claims from the IdP, make the access token longer than
    :data:`.rfc9068.MAX_TOKEN_LENGTH` or the refresh token longer than
    :data:`.issued_refresh.MAX_REFRESH_TOKEN_LENGTH`, the token endpoint answers a 502
    ``server_error`` now, rather than a login whose every MCP request is then refused."""
    access, refresh = answer["access_token"], answer.get("refresh_token")
    if len(access) > rfc9068.MAX_TOKEN_LENGTH or (refresh is not None and len(refresh) > MAX_REFRESH_TOKEN_LENGTH):
        raise oauth_error(
            "server_error",
            "The tokens for this user would be too large: the identity provider's access token or claims are too long.",
            502,
        )

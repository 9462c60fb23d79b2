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

:class:`IssuedMode` bundles what issued-token mode builds once per shim (keys, cipher, issuer,
identity source); :attr:`.context.ShimContext.issued` holds it, ``None`` in passthrough mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import rfc9068
from .encryption import TokenCipher
from .issued_refresh import IssuedRefresh, seal_refresh_token
from .sealing import Sealer
from .signing_keys import SigningKeys

if TYPE_CHECKING:
    from .identity import Identity
    from .identity_source import UpstreamIdentity
    from .strict.checks import RefreshLineage

__all__ = ["IssuedMode", "TokenIssuer"]


class TokenIssuer:
    """Mints the shim's access tokens and refresh tokens for one resource.

    ``access_token_lifetime`` is the access token's lifetime in seconds (RFC 6749 §5.1
    ``expires_in``). ``carry_upstream_token``: put the IdP's access token, encrypted, into
    each access token (claim ``upt``) so tools can call the IdP's API for the user; the
    token grows by about 1.4 times the IdP token's length.
    """

    def __init__(
        self,
        *,
        keys: SigningKeys,
        cipher: TokenCipher,
        sealer: Sealer,
        issuer: str,
        resource: str,
        access_token_lifetime: int,
        carry_upstream_token: bool = True,
    ) -> None:
        if access_token_lifetime <= 0:
            raise ValueError("access_token_lifetime must be positive")
        self.keys = keys
        self.cipher = cipher
        self.sealer = sealer
        self.issuer = issuer
        self.resource = resource
        self.access_token_lifetime = int(access_token_lifetime)
        self.carry_upstream_token = carry_upstream_token

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
        carried = upstream_access_token if self.carry_upstream_token else None
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
            upstream_access_token=carried,
            cipher=self.cipher if carried is not None else None,
        )

    def refresh_token(self, refresh: IssuedRefresh) -> str:
        """The shim's refresh token for ``refresh`` (signed; the IdP's tokens in it encrypted)."""
        return seal_refresh_token(self.sealer, self.cipher, refresh)

    def issue(
        self,
        *,
        client_id: str,
        client_fingerprint: str | None,
        subject: str,
        scopes: str | Iterable[str],
        identity: Identity | Mapping[str, Any] | None = None,
        upstream_access_token: str | None = None,
        upstream_refresh_token: str | None = None,
        refresh: bool = True,
        auth_time: int | None = None,
        lineage: RefreshLineage | None = None,
    ) -> dict[str, Any]:
        """The token response (RFC 6749 §5.1) for ``subject``, as a JSON-ready dict.

        ``identity``: the user's :class:`~.identity.Identity` (or the identity claims an
        earlier token carried, on refresh); its name and e-mail go into the access token.
        ``refresh``: also issue a refresh token, bound to ``client_fingerprint``
        (:attr:`.clients.Client.fingerprint`); it carries ``upstream_refresh_token``, or,
        without one, ``upstream_access_token`` for a re-check at refresh time. A machine
        grant (RFC 6749 §4.4.3: no refresh token) passes ``refresh=False``. ``lineage``: in
        strict mode, the refresh token's family and new id (:mod:`.strict.checks`).
        The answer never contains the IdP's tokens in clear.
        """
        scope = scopes if isinstance(scopes, str) else " ".join(dict.fromkeys(scopes))
        scope = " ".join(dict.fromkeys(scope.split()))
        if identity is None:
            claims: Mapping[str, Any] = {}
        elif isinstance(identity, Mapping):
            claims = identity
        else:
            claims = identity.token_claims()
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
        if refresh:
            if not client_fingerprint:
                raise ValueError("a refresh token is bound to a client: client_fingerprint is required")
            answer["refresh_token"] = self.refresh_token(
                IssuedRefresh(
                    client=client_fingerprint,
                    resource=self.resource,
                    subject=subject,
                    scope=scope,
                    upstream_refresh_token=upstream_refresh_token,
                    # Without the IdP's refresh token, its access token is what a refresh re-checks.
                    upstream_access_token=upstream_access_token if upstream_refresh_token is None else None,
                    identity_claims=dict(claims),
                    auth_time=auth_time,
                    family=lineage.family if lineage is not None else None,
                    token_id=lineage.token_id if lineage is not None else None,
                )
            )
        return answer


@dataclass(frozen=True)
class IssuedMode:
    """What issued-token mode builds once per shim: the signing keys (published at the JWKS
    endpoint), the cipher for the IdP's tokens inside the shim's, the token issuer, and where
    the user's identity comes from."""

    keys: SigningKeys
    cipher: TokenCipher
    tokens: TokenIssuer
    identity: UpstreamIdentity

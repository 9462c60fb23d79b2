"""Verifying the shim's own access tokens at its MCP endpoint (issued-token mode).

:class:`IssuedBearerVerifier` is what :attr:`.shim.OAuthShim.verifier` is in issued-token
mode: the same interface as :class:`.verify.BearerVerifier` (``verify_token`` for the ``mcp``
SDK's ``TokenVerifier`` protocol, ``authenticate``, ``access_token``, ``remembered``,
``verify_locally``, ``required_scopes``, ``challenge_scopes``), so
:meth:`.shim.OAuthShim.protect`, the bridge and the SDK work unchanged. It checks tokens
locally against the shim's own keys (:mod:`.rfc9068`: ``typ`` ``at+jwt``, signature, ``iss``
the shim, ``aud`` the resource, lifetime) and never asks the IdP: the IdP's own tokens, and
tokens of another shim or for another resource, are refused with 401 ``invalid_token`` (RFC
6750 §3.1).

A verified token is an :class:`IssuedAccessToken`: the SDK's ``AccessToken`` plus the user's
identity and, for tools calling the IdP's API, :meth:`IssuedAccessToken.upstream_access_token`.

This module imports the ``mcp`` SDK (the token class extends its ``AccessToken``); it is loaded
only when the verifier is first used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mcp.server.auth.provider import AccessToken
from pydantic import PrivateAttr

from .encryption import DecryptionError, TokenCipher
from .identity import Identity
from .rfc9068 import MAX_TOKEN_LENGTH, IssuedTokenVerifier, ShimClaims
from .verify import BearerVerifier, VerifierUpstream

if TYPE_CHECKING:
    from .issuing import TokenIssuer

__all__ = ["IssuedAccessToken", "IssuedBearerVerifier"]

logger = logging.getLogger("mcp_oauth_shim.verify")

# The fields of ShimClaims an IssuedAccessToken carries as they are, under the same name.
_SAME_NAMED_FIELDS = ("client_id", "expires_at", "resource", "subject", "name", "email", "preferred_username")


class IssuedAccessToken(AccessToken):
    """A verified access token the shim issued: the SDK's ``AccessToken`` (``token``,
    ``client_id``, ``scopes``, ``expires_at``, ``resource``, ``subject``, ``claims``) with the
    user's ``name``, ``email`` and ``preferred_username`` as the IdP gave them (RFC 9068
    §2.2.3.1), :attr:`identity`, and :meth:`upstream_access_token`."""

    name: str | None = None
    email: str | None = None
    preferred_username: str | None = None
    _claims: ShimClaims | None = PrivateAttr(default=None)
    _cipher: TokenCipher | None = PrivateAttr(default=None)

    @classmethod
    def from_claims(cls, token: str, claims: ShimClaims, cipher: TokenCipher | None) -> IssuedAccessToken:
        copied = {name: getattr(claims, name) for name in _SAME_NAMED_FIELDS}
        access = cls(token=token, scopes=list(claims.scopes), claims=dict(claims.claims), **copied)
        access._claims = claims
        access._cipher = cipher
        return access

    @property
    def identity(self) -> Identity:
        """The user (``subject`` is the IdP's ``sub``, or a GitHub user's numeric id)."""
        claims = self.claims or {}
        verified = claims.get("email_verified")
        return Identity(
            subject=self.subject or "",
            name=self.name,
            email=self.email,
            email_verified=verified if isinstance(verified, bool) else None,
            preferred_username=self.preferred_username,
            claims={k: claims[k] for k in ("name", "email", "email_verified", "preferred_username") if k in claims},
        )

    def upstream_access_token(self) -> str | None:
        """The IdP's access token this token carries, decrypted, for calling the IdP's API as
        the user (GitHub's REST API, Google's APIs); ``None`` when the token carries none
        (a machine client's) or the shim cannot open it (the key was rotated out)."""
        if self._claims is None or self._cipher is None:
            return None
        try:
            return self._claims.upstream_access_token(self._cipher)
        except DecryptionError:
            logger.warning("the IdP token inside an access token could not be decrypted (key rotated out?)")
            return None


class IssuedBearerVerifier(BearerVerifier):
    """Checks the RFC 9068 access tokens ``tokens`` mints, locally; a ``BearerVerifier`` in every
    other respect (challenges, scopes, the SDK protocol, the token cache). The issuer's keys
    check the signature, its ``issuer`` is the expected ``iss`` and its ``resource`` the
    ``aud``; its cipher opens the IdP's token carried inside
    (:meth:`IssuedAccessToken.upstream_access_token`)."""

    max_token_length = MAX_TOKEN_LENGTH

    def __init__(
        self,
        upstream: VerifierUpstream,
        tokens: TokenIssuer,
        *,
        resource_metadata_url: str,
        required_scopes: Iterable[str] = (),
        scopes_supported: Iterable[str] | None = None,
    ) -> None:
        super().__init__(
            upstream,
            audience=tokens.resource,
            issuer=tokens.issuer,
            resource_metadata_url=resource_metadata_url,
            required_scopes=required_scopes,
            scopes_supported=scopes_supported,
            introspect=False,
        )
        self.cipher = tokens.cipher
        # The token objects handed out are kept in the inherited cache until the token expires:
        # a repeated call costs a dictionary lookup (pydantic validation is not repeated).
        self._issued = IssuedTokenVerifier(
            tokens.keys,
            issuer=tokens.issuer,
            audience=tokens.resource,
            leeway=self.leeway,
            required_scopes=self.required_scopes,
            cache_size=0,
            clock=self._clock,
        )

    async def verify_locally(self, token: str) -> AccessToken:
        """Same as :meth:`access_token`: issued tokens are always checked locally, never by
        the IdP."""
        return await self.access_token(token)

    async def _verify_new(self, token: str, now: float) -> IssuedAccessToken:
        claims = self._issued.verify(token)
        access = IssuedAccessToken.from_claims(token, claims, self.cipher)
        self._keep(token, access, float(claims.expires_at))
        return access

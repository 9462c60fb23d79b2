"""The shim's own refresh tokens in issued-token mode: signed, bound, upstream tokens encrypted.

A refresh token (RFC 6749 §1.5, §6) the shim issues next to its RFC 9068 access token must let
a later refresh grant mint a new access token for the same user without any store. So it
carries what the new token needs (client, resource, scope, subject, identity claims) and the
IdP's refresh token, all signed by :class:`~mcp_oauth_shim.sealing.Sealer` under a purpose of
its own (a proxy-mode refresh token never opens here, nor the reverse). The IdP's tokens inside
are encrypted (:class:`~mcp_oauth_shim.encryption.TokenCipher`) with the client, resource and
subject as associated data: the client holding the refresh token cannot read them, and a
ciphertext moved into another signed value does not open.

An IdP that issues no refresh token but long-lived access tokens (a GitHub OAuth app) can be
served by carrying the upstream *access* token instead: a refresh then re-checks it at the IdP
(the identity resolver) and mints a new shim access token.

The client binding is the registered client's fingerprint (``Client.fingerprint``), as for the
proxy-mode refresh token, so a refresh token stolen from one client is refused for another
(RFC 6749 §6 / RFC 9700 §4.14.2: refresh tokens are bound to the client they were issued to).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .encryption import UPSTREAM_ACCESS_TOKEN, UPSTREAM_REFRESH_TOKEN, DecryptionError, TokenCipher
from .sealing import ReasonError, Sealer, SealError

__all__ = ["ISSUED_REFRESH", "MAX_REFRESH_TOKEN_LENGTH", "IssuedRefresh", "RefreshTokenError", "open_refresh_token", "seal_refresh_token"]

#: The sealing purpose (itsdangerous salt) of issued-mode refresh tokens.
ISSUED_REFRESH = "mcp-oauth-shim.issued-refresh-token"
#: A refresh token carries the IdP's refresh token or, from an IdP that gives none, its access
#: token, encrypted and then base64url-encoded twice: about 1.8 times that token's length, plus
#: the identity claims. 48 KiB holds one carrying the largest IdP access token the shim accepts
#: (16 KiB); IdP JWTs listing roles and groups run to several KiB. The token endpoint reads at
#: most 64 KiB of form.
MAX_REFRESH_TOKEN_LENGTH = 48 * 1024
_VERSION = 1


class RefreshTokenError(ReasonError):
    """A refresh token that must be refused (RFC 6749 §5.2 ``invalid_grant``). ``reason`` is
    safe to show the client."""


@dataclass(frozen=True)
class IssuedRefresh:
    """What an issued refresh token carries. ``client`` is the client's fingerprint, ``scope``
    the granted scope (space-separated), ``identity_claims`` the RFC 9068 §2.2.3.1 claims the
    access tokens repeat (:meth:`.identity.Identity.token_claims`). The upstream tokens are in
    plaintext here, in memory only."""

    client: str
    resource: str
    subject: str
    scope: str = ""
    upstream_refresh_token: str | None = field(default=None, repr=False)
    upstream_access_token: str | None = field(default=None, repr=False)
    identity_claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    auth_time: int | None = None
    # Strict mode's refresh-token family and this token's id (RFC 9700 §4.14.2); None without it.
    family: str | None = None
    token_id: str | None = None

    def context(self) -> tuple[str, str, str]:
        """The associated data of the upstream tokens inside (:mod:`.encryption`)."""
        return (self.client, self.resource, self.subject)


def seal_refresh_token(sealer: Sealer, cipher: TokenCipher, refresh: IssuedRefresh) -> str:
    """The refresh token for ``refresh``: signed, upstream tokens encrypted; URL-safe text."""
    value: dict[str, Any] = {"v": _VERSION, "c": refresh.client, "r": refresh.resource, "s": refresh.subject, "sc": refresh.scope}
    if refresh.identity_claims:
        value["i"] = dict(refresh.identity_claims)
    if refresh.auth_time is not None:
        value["at"] = int(refresh.auth_time)
    if refresh.family is not None and refresh.token_id is not None:
        value["fm"], value["id"] = refresh.family, refresh.token_id
    context = refresh.context()
    if refresh.upstream_refresh_token is not None:
        value["u"] = cipher.encrypt(refresh.upstream_refresh_token, purpose=UPSTREAM_REFRESH_TOKEN, context=context)
    if refresh.upstream_access_token is not None:
        value["ua"] = cipher.encrypt(refresh.upstream_access_token, purpose=UPSTREAM_ACCESS_TOKEN, context=context)
    return sealer.seal(ISSUED_REFRESH, value)


def open_refresh_token(
    sealer: Sealer, cipher: TokenCipher, token: str, *, client: str, resource: str, max_age: int
) -> IssuedRefresh:
    """The content of ``token`` if it is one of ours, unexpired, issued to ``client`` for
    ``resource``; otherwise :class:`RefreshTokenError`."""
    try:
        value = sealer.unseal(ISSUED_REFRESH, token, max_age=max_age, max_length=MAX_REFRESH_TOKEN_LENGTH)
    except SealError as exc:
        raise RefreshTokenError(f"The refresh token is {exc.reason}.") from None
    if not isinstance(value, dict) or value.get("v") != _VERSION:
        raise RefreshTokenError("The refresh token is malformed.")
    issued_to, issued_for, subject, scope = value.get("c"), value.get("r"), value.get("s"), value.get("sc", "")
    if not (isinstance(issued_to, str) and isinstance(issued_for, str) and isinstance(subject, str) and isinstance(scope, str)):
        raise RefreshTokenError("The refresh token is malformed.")
    if not hmac.compare_digest(issued_to.encode(), client.encode()):
        raise RefreshTokenError("The refresh token was issued to another client.")
    if issued_for != resource:
        raise RefreshTokenError("The refresh token was issued for another resource.")
    claims = value.get("i", {})
    auth_time = value.get("at")
    family, token_id = value.get("fm"), value.get("id")
    if not (isinstance(family, str) and isinstance(token_id, str)):
        family = token_id = None
    context = (issued_to, issued_for, subject)
    try:
        upstream_refresh = _open(cipher, value.get("u"), UPSTREAM_REFRESH_TOKEN, context)
        upstream_access = _open(cipher, value.get("ua"), UPSTREAM_ACCESS_TOKEN, context)
    except DecryptionError:
        # Signed by us yet not decryptable: the encryption key was rotated out (secret dropped).
        raise RefreshTokenError("The refresh token can no longer be used; sign in again.") from None
    return IssuedRefresh(
        client=issued_to,
        resource=issued_for,
        subject=subject,
        scope=scope,
        upstream_refresh_token=upstream_refresh,
        upstream_access_token=upstream_access,
        identity_claims=MappingProxyType(dict(claims) if isinstance(claims, dict) else {}),
        auth_time=auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None,
        family=family,
        token_id=token_id,
    )


def _open(cipher: TokenCipher, ciphertext: Any, purpose: str, context: tuple[str, str, str]) -> str | None:
    """The upstream token inside, if any; anything but a ciphertext string is a :class:`DecryptionError`."""
    return None if ciphertext is None else cipher.decrypt_text(ciphertext, purpose=purpose, context=context)

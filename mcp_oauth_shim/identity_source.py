"""Where issued-token mode learns the user: the source :attr:`.config.Upstream.identity` names.

- ``"id_token"``: the ID token of the IdP's token response, verified against the IdP's keys
  (OpenID Connect Core §3.1.3.7, with the ``nonce`` the shim sent), or the UserInfo endpoint
  when the response carries none; UserInfo also completes an ID token that names the user
  but carries neither name nor e-mail;
- ``"userinfo"``: the UserInfo endpoint (Core §5.3);
- ``"github"``: GitHub's REST API (``GET /user``, ``/user/emails``).

The IdP's issuer and UserInfo endpoint come from its discovery document, read when the first
login needs them (the configured ``userinfo_endpoint`` wins). The keys are a
:class:`.jwks.KeyStore`, which follows the IdP's key rotation.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import replace

from . import jsonsafe
from .config import GOOGLE_ISSUER, Upstream
from .identity import (
    GITHUB_API,
    GitHubResolver,
    Identity,
    IdentityResolver,
    IdTokenResolver,
    UpstreamTokens,
    UserinfoResolver,
    fetch_userinfo,
)
from .jwks import KeyStore
from .upstream import UpstreamClient, UpstreamError

__all__ = ["UpstreamIdentity"]

logger = logging.getLogger("mcp_oauth_shim.identity")

# Google documents the ID token's ``iss`` as "https://accounts.google.com" or
# "accounts.google.com" (OpenID Connect on Google, "Validating an ID token").
_ISSUER_ALIASES = {GOOGLE_ISSUER: ("accounts.google.com",)}


class UpstreamIdentity:
    """The user behind the IdP's tokens, from the source the upstream is configured with."""

    def __init__(self, upstream: Upstream, client: UpstreamClient, keys: KeyStore) -> None:
        self.upstream = upstream
        self.source = upstream.identity
        self._client = client
        self._keys = keys

    @property
    def uses_id_token(self) -> bool:
        """Whether logins need a ``nonce`` in the authorization request (Core §3.1.2.1)."""
        return self.source == "id_token"

    async def resolve(self, tokens: UpstreamTokens) -> Identity:
        """The user the IdP's token response (and the ``nonce`` sent, if any) names, or
        :class:`UpstreamError` (``invalid_grant`` when the IdP says the token is no good)."""
        resolver = await self._resolver(tokens)
        identity = await self._looked_up(resolver, tokens)
        if self.source == "id_token" and tokens.id_token is not None and identity.name is None and identity.email is None:
            identity = await self._with_userinfo(identity, tokens.access_token)
        return identity

    async def _with_userinfo(self, identity: Identity, access_token: str) -> Identity:
        """Some IdPs put only ``sub`` in the ID token and the profile in UserInfo (OpenID Connect
        Core §5.4: scope claims go to UserInfo when an access token is issued). One UserInfo
        call completes the identity; it must name the same user (§5.3.2). Best effort: the
        verified ID token already identifies the user, so a failure here keeps it as it is."""
        url, issuer = await self._userinfo()
        if url is None:
            return identity
        try:
            extra = await fetch_userinfo(self._client.transport, url, access_token, issuer=issuer, expected_subject=identity.subject)
        except UpstreamError as exc:
            self._client.rediscover_if_gone(exc)
            logger.warning("UserInfo not read, the identity keeps the ID token's claims only: %s", exc.description)
            return identity
        return replace(
            identity,
            name=extra.name,
            email=extra.email,
            email_verified=extra.email_verified,
            preferred_username=identity.preferred_username or extra.preferred_username,
            claims={**extra.claims, **identity.claims},
        )

    async def recheck(self, access_token: str, subject: str) -> Identity:
        """Asks the IdP again who holds ``access_token`` (a refresh without an upstream refresh
        token); ``invalid_grant`` if the token was revoked or now names someone else."""
        if self.source == "github":
            resolver: IdentityResolver = GitHubResolver(api_url=self.upstream.user_api or GITHUB_API, fetch_emails=False)
        else:
            url, issuer = await self._userinfo()
            if url is None:
                raise UpstreamError(400, "invalid_grant", "The sign-in can no longer be renewed; sign in again.")
            resolver = UserinfoResolver(url, issuer=issuer)
        identity = await self._looked_up(resolver, UpstreamTokens(access_token))
        if identity.subject != subject:
            raise UpstreamError(400, "invalid_grant", "The identity provider now names another user; sign in again.")
        return identity

    async def _looked_up(self, resolver: IdentityResolver, tokens: UpstreamTokens) -> Identity:
        """``resolver``'s answer on the IdP client's transport. An endpoint that answers 404 or
        410 may have moved: the next lookup reads the discovery document again, as every
        other request to the IdP does."""
        try:
            return await resolver.resolve(self._client.transport, tokens)
        except UpstreamError as exc:
            self._client.rediscover_if_gone(exc)
            raise

    async def _resolver(self, tokens: UpstreamTokens) -> IdentityResolver:
        if self.source == "github":
            return GitHubResolver(api_url=self.upstream.user_api or GITHUB_API)
        url, issuer = await self._userinfo()
        if self.source == "userinfo":
            if url is None:
                raise UpstreamError(502, "server_error", "The identity provider publishes no userinfo_endpoint.")
            return UserinfoResolver(url, issuer=issuer)
        if issuer is None:
            raise UpstreamError(502, "server_error", "The identity provider has no issuer to check its ID tokens against.")
        if tokens.id_token is not None:
            issuer = _accepted_issuer(tokens.id_token, issuer)
        return IdTokenResolver(self._keys.key_for, issuer, self.upstream.client_id, userinfo_url=url)

    async def _userinfo(self) -> tuple[str | None, str | None]:
        metadata = await self._client.metadata()
        discovered = metadata.raw.get("userinfo_endpoint")
        url = self.upstream.userinfo_endpoint or (discovered if isinstance(discovered, str) and discovered else None)
        return url, metadata.issuer or self.upstream.issuer


def _accepted_issuer(id_token: str, issuer: str) -> str:
    """``issuer``, or the documented alias of it that ``id_token`` names (still checked exactly
    afterwards, with the signature)."""
    aliases = _ISSUER_ALIASES.get(issuer)
    if not aliases:
        return issuer
    try:
        payload = id_token.split(".")[1]
        claimed = jsonsafe.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss")
    except (IndexError, ValueError, binascii.Error, AttributeError, UnicodeError):
        return issuer
    return claimed if claimed in aliases else issuer

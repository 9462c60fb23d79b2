"""Who is calling a tool: the verified user and client, and the IdP token to act for them.

A tool often needs more than "the token is valid": whose notes to list, which e-mail to show,
and, for a tool that calls the identity provider's own API (a GitHub tool calling GitHub), the
IdP's access token of that user. :class:`Caller` is that answer, built from the access token
the shim's verifier accepted, in either mode:

* **passthrough** (the client holds the IdP's own JWT): the identity is read from the token's
  claims (``sub``, and ``name``/``email``/``preferred_username`` when the IdP put them in its
  access tokens, RFC 9068 §2.2.3.1), and the upstream token *is* the bearer token;
* **issued tokens** (the shim minted an RFC 9068 token for its own audience): the identity is
  what the shim wrote into the token at sign-in, and the IdP's access token travels encrypted
  inside it (claim ``upt``); it is decrypted only when a tool asks for it, per call.

Nothing is stored on the server in either mode: everything comes from the token the request
carries (and the verifier's cache of verified tokens, which holds no plaintext IdP token).

:func:`current_caller` serves tools of the ``mcp`` SDK's ``MCPServer`` behind
``shim.protect``; FastAPI routes use :func:`mcp_bridge.verified_caller` and
:func:`mcp_bridge.upstream_token`, which verify the request's own ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeGuard

from .bearer_errors import InvalidToken
from .rfc9068 import UPSTREAM_TOKEN_CLAIM

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from .issued_verifier import IssuedAccessToken

__all__ = ["Caller", "UpstreamTokenUnavailable", "carries_upstream_token", "current_caller"]


def carries_upstream_token(access: object) -> TypeGuard[IssuedAccessToken]:
    """Whether ``access`` is a token the shim issued (:class:`.issued_verifier.IssuedAccessToken`,
    whose ``upstream_access_token()`` decrypts the IdP's token it may carry)."""
    return isinstance(access, _issued_access_token_class())


@cache
def _issued_access_token_class() -> type[IssuedAccessToken]:
    """Imported on first use, not at the top: that module extends the ``mcp`` SDK's
    ``AccessToken``, which is loaded anyway once there is a verified token to ask about. Cached:
    an import statement in :func:`carries_upstream_token` cost 4.2 µs per call, the cached class
    0.5 µs (process time, in-process, loaded machine)."""
    from .issued_verifier import IssuedAccessToken

    return IssuedAccessToken


class UpstreamTokenUnavailable(InvalidToken):
    """The caller's token holds no usable IdP access token.

    ``status_code`` is the RFC 6750 §3.1 answer a route gives: 401 ``invalid_token`` when the
    carried token can no longer be opened (the shim's keys rotated: signing in again gives a
    new one), 403 ``insufficient_scope`` when the token never carried one (a machine client's
    token, or a shim configured not to carry the IdP's token): no sign-in changes that.
    """

    def __init__(self, description: str, *, status_code: int) -> None:
        super().__init__(description)
        self.status_code = status_code
        #: The RFC 6750 §3.1 error code matching :attr:`status_code`.
        self.error = "invalid_token" if status_code == 401 else "insufficient_scope"


_NOT_CARRIED = (
    "This access token carries no access token for the identity provider's API "
    "(a machine client's token, or the server does not carry the identity provider's token)."
)
_NOT_OPENED = (
    "The identity provider's access token inside this access token can no longer be opened "
    "(the server's keys changed); sign in again."
)


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller of a tool or route: the user, the client, and what was granted.

    ``subject`` is the user as the IdP names them (``sub``, unique per ``issuer``; for a machine
    client's token, the client itself). ``name``, ``email`` and ``username``
    (``preferred_username``) are ``None`` when the token does not say. ``scopes`` are the
    granted scopes in the token's order, ``client_id`` the OAuth client the user signed in with.
    ``issued_by_shim`` tells the modes apart (see :meth:`upstream_access_token`). ``claims`` is
    the whole verified payload, read-only (JWT claims or the RFC 7662 introspection answer).
    """

    subject: str | None
    client_id: str
    scopes: tuple[str, ...]
    name: str | None = None
    email: str | None = None
    username: str | None = None
    issuer: str | None = None
    expires_at: int | None = None
    issued_by_shim: bool = False
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)
    access_token: AccessToken | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_access_token(cls, access: AccessToken) -> Caller:
        """The caller a verified ``AccessToken`` (the SDK's, or the shim's issued subclass) names."""
        claims = access.claims or {}
        return cls(
            subject=access.subject,
            client_id=access.client_id,
            scopes=tuple(access.scopes),
            name=_text(claims, "name"),
            email=_text(claims, "email"),
            username=_text(claims, "preferred_username"),
            issuer=_text(claims, "iss"),
            expires_at=access.expires_at,
            issued_by_shim=carries_upstream_token(access),
            # The verifier caches this token for later requests: the tool gets a read-only view.
            claims=MappingProxyType(claims),
            access_token=access,
        )

    def has_scopes(self, *scopes: str) -> bool:
        """Whether every one of ``scopes`` was granted."""
        return set(scopes) <= set(self.scopes)

    def upstream_access_token(self) -> str:
        """The IdP's access token for this user, to call the IdP's own API on their behalf.

        Passthrough: the bearer token itself (the IdP issued it). Issued tokens: the IdP token
        carried encrypted inside, decrypted now (nothing is kept). Raises
        :class:`UpstreamTokenUnavailable` when there is none or it cannot be opened.
        """
        access = self.access_token
        if access is None:
            raise UpstreamTokenUnavailable(_NOT_CARRIED, status_code=403)
        if not carries_upstream_token(access):
            return access.token
        # None both when nothing is carried and when it cannot be opened (its key was dropped):
        # the claim tells them apart; for the second, signing in again helps.
        token = access.upstream_access_token()
        if token:
            return token
        carried = UPSTREAM_TOKEN_CLAIM in self.claims
        raise UpstreamTokenUnavailable(_NOT_OPENED if carried else _NOT_CARRIED, status_code=401 if carried else 403)


def current_caller() -> Caller:
    """The caller of the running MCP tool, for the ``mcp`` SDK's ``MCPServer`` behind ``shim.protect``.

    ``shim.protect`` puts the verified token where the SDK's ``get_access_token()`` finds it;
    this reads it from there. Raises ``LookupError`` outside an authenticated request (a
    server run without ``shim.protect``, or code running after the request).
    """
    from mcp.server.auth.middleware.auth_context import get_access_token

    access = get_access_token()
    if access is None:
        raise LookupError("no authenticated MCP request is being served: put the server behind shim.protect(...)")
    return Caller.from_access_token(access)

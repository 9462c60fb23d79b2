"""OAuth 2.0 Token Introspection (RFC 7662) for opaque access tokens, and what keeps it from
becoming an amplifier that makes the IdP work for unauthenticated callers.

:func:`introspect` asks the IdP about one token with the shim's client authentication
(RFC 7662 §2.1) and returns the claims of an active one (§2.2). The verifier
(:class:`~mcp_oauth_shim.verify.BearerVerifier`) guards it: concurrent requests with the same
token share one introspection, and a token the IdP refused stays refused for
:data:`REFUSAL_CACHE_TTL` seconds (bounded, keyed by the token's hash), so a client or attacker
repeating it costs the IdP one call per period at most.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from .bearer_errors import InvalidToken
from .upstream import UpstreamError, UpstreamMetadata

__all__ = [
    "INTROSPECTION_CACHE_TTL",
    "NO_INTROSPECTION",
    "REFUSAL_CACHE_TTL",
    "IntrospectionClient",
    "introspect",
]

logger = logging.getLogger("mcp_oauth_shim.verify")

#: Seconds an introspection result is reused (RFC 7662 §4: caching trades freshness for load).
INTROSPECTION_CACHE_TTL = 60.0
#: Seconds a token the introspection refused stays refused without asking again. A refused token
#: does not become valid (short of IdP replication lag right after issuance, which the shortness
#: covers), and a client or attacker repeating one costs the IdP one call per period at most.
REFUSAL_CACHE_TTL = 30.0

NO_INTROSPECTION = (
    "The access token is not a JWT, and opaque tokens cannot be checked here "
    "(the identity provider offers no token introspection). Ask the identity provider "
    "for a JWT access token for this resource."
)


class IntrospectionClient(Protocol):
    """What introspection needs from :class:`mcp_oauth_shim.upstream.UpstreamClient`."""

    async def metadata(self) -> UpstreamMetadata: ...

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]: ...


async def introspect(upstream: IntrospectionClient, token: str) -> dict[str, Any]:
    """The IdP's answer for an active ``token`` (RFC 7662 §2.2).

    :class:`InvalidToken` when the token is not active or the IdP offers no introspection;
    :class:`UpstreamError` when the IdP fails.
    """
    meta = await upstream.metadata()
    endpoint = meta.introspection_endpoint or meta.raw.get("introspection_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidToken(NO_INTROSPECTION)
    status, body = await upstream.post_form(endpoint, {"token": token, "token_type_hint": "access_token"})
    if status != 200:
        logger.warning("token introspection answered %s", status)
        raise UpstreamError(502, "server_error", f"The identity provider's introspection answered {status}.")
    # §2.2: "active" is the only required member; anything but true is inactive.
    if body.get("active") is not True:
        raise InvalidToken("The access token is not active.")
    return dict(body)

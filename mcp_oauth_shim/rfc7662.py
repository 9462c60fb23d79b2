"""OAuth 2.0 Token Introspection (RFC 7662) for opaque access tokens, and what keeps it from
becoming an amplifier that makes the IdP work for unauthenticated callers.

:func:`introspect` asks the IdP about one token with the shim's client authentication
(RFC 7662 §2.1) and returns the claims of an active one (§2.2). :class:`Introspections` is
the guard in front of it: concurrent requests with the same token share one introspection, and
a token the IdP refused stays refused for a while (bounded, keyed by the token's hash), so a
client or attacker repeating it costs the IdP one call per period at most.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from .bearer_errors import InvalidToken
from .memo import BoundedMemo, SingleFlight
from .upstream import UpstreamError, UpstreamMetadata

__all__ = [
    "INTROSPECTION_CACHE_TTL",
    "NO_INTROSPECTION",
    "REFUSAL_CACHE_TTL",
    "IntrospectionClient",
    "Introspections",
    "introspect",
]

logger = logging.getLogger("mcp_oauth_shim.verify")

T = TypeVar("T")

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


class Introspections(Generic[T]):
    """Shared, remembered introspections: one per token at a time, refusals kept for
    ``refusal_ttl`` seconds in at most ``refusal_cache_size`` entries (by the caller's key,
    the token's hash). An :class:`UpstreamError` is not the token's fault and is not kept."""

    def __init__(self, *, refusal_cache_size: int, refusal_ttl: float, clock: Callable[[], float]) -> None:
        self.refusals: BoundedMemo[bytes, str] = BoundedMemo(refusal_cache_size if refusal_ttl > 0 else 0)
        self._refusal_ttl = refusal_ttl
        self._clock = clock
        self._flights: SingleFlight[bytes, T] = SingleFlight()

    def refused(self, key: bytes, now: float) -> str | None:
        """Why the token under ``key`` was refused recently, if it was."""
        return self.refusals.get(key, now)

    async def run(self, key: bytes, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result, shared with concurrent callers for the same ``key``; an
        :class:`InvalidToken` it raises is remembered."""
        try:
            return await self._flights.run(key, work)
        except InvalidToken as exc:
            self.refusals.put(key, exc.description, self._clock() + self._refusal_ttl)
            raise

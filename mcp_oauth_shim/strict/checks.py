"""What the endpoints ask strict mode, in the endpoints' own terms.

Each helper takes the shim's ``StrictMode`` or ``None`` (strict mode off) and, with ``None``,
answers as the stateless shim always has, without a round trip:

- :func:`first_use`: single use of a sealed value (a code, a consent ticket, the IdP's state);
- :func:`check_rates`: the rate limits of one request, raising :class:`RateLimited`;
- :func:`client_address`: the address a rate limit counts (the connection's peer);
- :func:`start_refresh_family` and :func:`use_refresh_token`: refresh-token rotation with reuse
  detection (RFC 9700 §4.14.2), and :func:`refresh_at_idp`: the IdP's part of a refresh, after
  which a refresh the IdP failed to answer leaves its token usable for the client's retry.

Every call may raise :class:`.StrictModeUnavailable` (the store did not answer and the
operator chose ``on_unavailable="refuse"``); the endpoints answer it with 503
``temporarily_unavailable`` (:mod:`.answers`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidGrantError, OAuth2Error
from ..sealing import random_token
from ..upstream import UpstreamError
from .limits import RateBucket, RateDecision
from .mode import StrictMode
from .store import digest

if TYPE_CHECKING:
    from ..issued_refresh import IssuedRefresh
    from ..payloads import RefreshToken

__all__ = [
    "DERIVED_FAMILY_PREFIX",
    "RateLimited",
    "RefreshLineage",
    "check_rates",
    "check_refresh_use",
    "client_address",
    "client_and_address",
    "first_use",
    "new_token_id",
    "refresh_at_idp",
    "revoke_refresh_family",
    "start_refresh_family",
    "use_refresh_token",
]

# What a request without a peer address counts as (an ASGI server may leave "client" out).
UNKNOWN_ADDRESS = "unknown"
# The IPv6 prefix one end site holds at least (RFC 6177), under which the rate limits count it.
IPV6_SITE_BYTES = 8
IPV6_SITE_SUFFIX = "/64"
# ::ffff:0:0/96, IPv4 addresses as a dual-stack socket reports them (RFC 4291 §2.5.5.2).
IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
# A family made up for a refresh token sealed without one (strict mode off, or an older version).
DERIVED_FAMILY_PREFIX = "sealed-"
# The lowest status of an answer that says the IdP failed (RFC 9110 §15.6), not the grant.
IDP_FAILED = 500

T = TypeVar("T")


class RateLimited(Exception):
    """A request over one of its rate limits: answer 429 with ``decision.headers`` (RFC 6585 §4)."""

    def __init__(self, decision: RateDecision) -> None:
        super().__init__(f"rate limited; retry after {decision.retry_after_seconds} s")
        self.decision = decision


def client_address(request: Request) -> str:
    """The address the request is counted under: the ASGI scope's ``client``, the connection's
    peer; for an IPv6 peer its /64 network.

    RFC 4291 §2.5.4 and RFC 6177: an IPv6 end site (a home network, a cloud VM) is given at
    least a /64, so one host can send each request from a new address of its own; counting
    per address would let it past every per-address limit. An IPv4-mapped address (a
    dual-stack listener's IPv4 peer, RFC 4291 §2.5.5.2) counts as the IPv4 address it maps.

    Behind a reverse proxy the peer is the proxy's address, unless the ASGI server rewrites it
    from ``X-Forwarded-For`` for trusted proxies (uvicorn ``--forwarded-allow-ips``, which only
    then trusts the header): without that every request counts as one address and the
    per-address limits apply to all users together.
    """
    peer = request.scope.get("client")
    if not peer:
        return UNKNOWN_ADDRESS
    host = str(peer[0])
    if ":" not in host:  # IPv4, or not an IP address: counted as it is
        return host
    # socket's C parser rather than ipaddress: 3 µs against 73 µs per IPv6 request, measured on a
    # busy two-core machine (tests/strict/test_strict_addresses.py compares the two).
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])  # less a zone (fe80::1%eth0)
    except OSError:
        return host
    if packed.startswith(IPV4_MAPPED_PREFIX):
        return socket.inet_ntop(socket.AF_INET, packed[len(IPV4_MAPPED_PREFIX) :])
    return socket.inet_ntop(socket.AF_INET6, packed[:IPV6_SITE_BYTES] + bytes(16 - IPV6_SITE_BYTES)) + IPV6_SITE_SUFFIX


def client_and_address(client_id: str, address: str) -> str:
    """The key of the per-client-and-address buckets. Only its digest is stored."""
    return f"{client_id}|{address}"


async def check_rates(strict: StrictMode | None, *hits: tuple[RateBucket, str]) -> None:
    """Count this request in each ``(bucket, key)``; raise :class:`RateLimited` when a bucket
    refuses it (the longest wait of those that refuse).

    On a store shared by replicas each count is a round trip, so several are sent at once: the
    authorization endpoint's two counts then take one round trip of wall time instead of two.
    In memory they run one after the other (a task per count would cost more than the count).
    """
    if strict is None:
        return
    if len(hits) > 1 and strict.covers_replicas:
        answers = await asyncio.gather(*(strict.hit(bucket, key) for bucket, key in hits), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        decisions = [answer for answer in answers if isinstance(answer, RateDecision)]
    else:
        decisions = [await strict.hit(bucket, key) for bucket, key in hits]
    refused = [decision for decision in decisions if not decision.allowed]
    if refused:
        raise RateLimited(max(refused, key=lambda decision: decision.retry_after_seconds))


async def first_use(strict: StrictMode | None, kind: str, sealed: str, lifetime: int) -> bool:
    """Whether this is the first presentation of the sealed value ``sealed`` of ``kind``
    (always ``True`` without strict mode). The record is kept for ``lifetime`` seconds from
    now, at least as long as the value itself opens (it was sealed no later than now)."""
    if strict is None:
        return True
    return await strict.consume_once(kind, sealed, time.time() + lifetime)


@dataclass(frozen=True, slots=True)
class RefreshLineage:
    """What the next sealed refresh token carries in strict mode: its family, its own new id,
    and the IdP's refresh token to wrap when the IdP returns no new one. ``replaces``: the id
    of the refresh token presented for it (none for the first token of a login)."""

    family: str
    token_id: str
    upstream_refresh_token: str | None = None
    replaces: str | None = None


def start_refresh_family(strict: StrictMode | None) -> RefreshLineage | None:
    """The lineage of the first refresh token of a login: a new family (``None`` without
    strict mode: the refresh token then carries no family, as before)."""
    if strict is None:
        return None
    return RefreshLineage(random_token(12), new_token_id())


async def use_refresh_token(
    strict: StrictMode | None, token: RefreshToken | IssuedRefresh, sealed: str, lifetime: int
) -> RefreshLineage | None:
    """Record the use of a refresh token; the lineage of the token to issue in its place.

    RFC 9700 §4.14.2: a rotated refresh token presented a second time means two parties hold
    it, so its whole family is revoked and this and every later token of it are refused with
    ``invalid_grant``. A token sealed without a family (strict mode was off, or an earlier
    version sealed it) gets one made from its own digest, so a second use of it is a reuse too.
    ``lifetime``: the refresh-token lifetime, how long any token of the family can be honoured.
    ``token`` is either kind of refresh token: the sealed IdP one or the shim's own.
    """
    if strict is None:
        return None
    if token.family is not None and token.token_id is not None:
        family, token_id = token.family, token.token_id
    else:
        token_id = digest(sealed)
        family = DERIVED_FAMILY_PREFIX + token_id
    await check_refresh_use(strict, family, token_id, lifetime)
    return RefreshLineage(family, new_token_id(), token.upstream_refresh_token, replaces=token_id)


async def refresh_at_idp(strict: StrictMode | None, lineage: RefreshLineage | None, idp_call: Awaitable[T]) -> T:
    """The IdP's part of a refresh whose token's use was recorded (:func:`use_refresh_token`).

    When the IdP failed to answer (connection refused or lost, timeout, 5xx, busy 429/503: an
    :class:`~mcp_oauth_shim.upstream.UpstreamError`, or an error or answer with a status of 500
    or more), the client got no new token and will retry with the same one once the IdP is
    back; that retry must not be taken for a reuse (RFC 9700 §4.14.2 is about a rotated token,
    and this one was never rotated), so the use is released unless the family was revoked
    meanwhile. An IdP that answered the refresh with an error about the grant
    (``invalid_grant``, any 4xx) judged the token itself: its use stays recorded. Releasing
    never changes the answer: a store that cannot answer is logged, and the IdP's error stands.
    """
    if strict is None or lineage is None or lineage.replaces is None:
        return await idp_call
    try:
        answer = await idp_call
    except (UpstreamError, OAuth2Error) as exc:
        if exc.status_code >= IDP_FAILED:
            await strict.release_refresh(lineage.family, lineage.replaces)
        raise
    if isinstance(answer, Response) and answer.status_code >= IDP_FAILED:
        await strict.release_refresh(lineage.family, lineage.replaces)
    return answer


async def check_refresh_use(strict: StrictMode, family: str, token_id: str, lifetime: int) -> None:
    """Record the use of refresh token ``token_id`` of ``family``; ``invalid_grant`` when it
    was used before (the family is revoked now) or its family was revoked (RFC 9700 §4.14.2).
    For any kind of rotated refresh token: the caller issues the next one with the same family
    and a new id (:func:`new_token_id`)."""
    use = await strict.use_refresh(family, token_id, time.time() + lifetime)
    if not use.ok:
        raise InvalidGrantError(description="The refresh token was already used or revoked; sign in again.")


def new_token_id() -> str:
    """A fresh id for the next refresh token of a family (96 random bits)."""
    return random_token(12)


async def revoke_refresh_family(strict: StrictMode | None, family: str | None, sealed: str, lifetime: int) -> None:
    """Revoke the family of a refresh token (RFC 7009 §2.1: revoking a refresh token may
    revoke the grant), so a copy of it or of any token of its family is refused too.
    ``family`` is the one ``sealed`` carries; a token sealed without one (before strict mode was
    on) is its own family, named after its digest."""
    if strict is None:
        return
    family = family if family is not None else DERIVED_FAMILY_PREFIX + digest(sealed)
    await strict.revoke_family(family, time.time() + lifetime)

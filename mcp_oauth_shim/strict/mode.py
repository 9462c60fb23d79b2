"""Strict mode: single use, refresh-token reuse detection and rate limits, across replicas.

Without strict mode the shim stores nothing: a code or a consent ticket is honoured as often as
it is presented within its lifetime (the IdP's own single use of its codes is what stops a
second exchange), a refresh token until it expires, and nothing limits request rates.
:class:`StrictMode` adds the bookkeeping the stateless design leaves out, in Redis for any
number of replicas (:meth:`StrictMode.redis`) or in this process for a single one
(:meth:`StrictMode.in_memory`).

When Redis cannot answer, the operator's choice (``on_unavailable``) decides:

- ``"refuse"`` (the default): the operation raises :class:`StrictModeUnavailable`, which the
  endpoints answer with 503 ``temporarily_unavailable`` and ``Retry-After``; nothing is
  honoured that strict mode could not check;
- ``"allow"``: the operation answers as if strict mode were off (first use, not revoked,
  admitted) and a warning is logged, at most once per ``WARNING_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from .limits import ALLOWED, RateBucket, RateDecision, RateLimits
from .memory_store import MemoryStore
from .store import RefreshUse, StoreUnavailable, StrictStore

__all__ = ["OnUnavailable", "StrictMode", "StrictModeUnavailable"]

logger = logging.getLogger("mcp_oauth_shim.strict")

T = TypeVar("T")
OnUnavailable = Literal["refuse", "allow"]

WARNING_INTERVAL_SECONDS = 30.0

# A kind names what is consumed ("code", "consent"); it appears in Redis keys as it is.
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class StrictModeUnavailable(Exception):
    """Strict mode could not check a request (its store did not answer) and the operator chose
    ``on_unavailable="refuse"``. Answer 503 ``temporarily_unavailable`` (RFC 6749 §4.1.2.1,
    §5.2) with ``Retry-After: retry_after_seconds`` (RFC 9110 §10.2.3)."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("The server cannot check this request right now; try again shortly.")
        self.retry_after_seconds = retry_after_seconds
        self.description = str(self)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class _ThrottledWarning:
    """At most one warning per interval; the next one counts those left out in between."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")
        self._suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        logger.warning(message + " (%d similar warnings in the last %.0f s)", *args, suppressed, self.interval)


class StrictMode:
    """Single use, refresh families and rate limits on a :class:`StrictStore`.

    Build it with :meth:`redis` (any number of replicas) or :meth:`in_memory` (one process).
    Every ``until`` is a Unix time (``time.time()``): when the value the record is about
    expires, after which the record is useless and is dropped. Identifiers, token ids,
    families and rate-limit keys may be secrets: stores keep only their SHA-256 digests.
    """

    def __init__(
        self,
        store: StrictStore,
        *,
        on_unavailable: OnUnavailable = "refuse",
        unavailable_retry_after: int = 5,
    ) -> None:
        if on_unavailable not in ("refuse", "allow"):
            raise ValueError('on_unavailable must be "refuse" or "allow"')
        if unavailable_retry_after < 1:
            raise ValueError("unavailable_retry_after must be at least 1 second")
        self.store = store
        self.on_unavailable = on_unavailable
        self.unavailable_retry_after = unavailable_retry_after
        self._warning = _ThrottledWarning(WARNING_INTERVAL_SECONDS)

    @classmethod
    def redis(
        cls,
        url: str,
        *,
        key_prefix: str = "mcp-oauth-shim:",
        on_unavailable: OnUnavailable = "refuse",
        rate_limits: RateLimits | None = None,
        timeout: float = 0.5,
        unavailable_retry_after: int = 5,
    ) -> StrictMode:
        """Strict mode on the Redis server at ``url`` (needs the ``redis`` extra:
        ``pip install 'mcp-oauth-shim[redis]'``). ``timeout`` bounds every call in seconds.
        Replicas that should share records use the same ``url`` and ``key_prefix``.
        ``ValueError`` for a URL redis-py cannot use (its message never quotes the URL)."""
        from .redis_store import RedisStore  # the redis package is an optional extra

        store = RedisStore.from_url(url, rate_limits or RateLimits(), key_prefix=key_prefix, timeout=timeout)
        return cls(store, on_unavailable=on_unavailable, unavailable_retry_after=unavailable_retry_after)

    @classmethod
    def in_memory(
        cls,
        *,
        rate_limits: RateLimits | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> StrictMode:
        """Strict mode in this process's memory: the same guarantees for **one** process only
        (a second replica or worker keeps its own records). Never unavailable."""
        return cls(MemoryStore(rate_limits or RateLimits(), max_entries=max_entries, clock=clock))

    @property
    def covers_replicas(self) -> bool:
        """Whether the records are shared by every replica (Redis) or this process's only."""
        return self.store.covers_replicas

    async def consume_once(self, kind: str, identifier: str, until: float) -> bool:
        """``True`` the first time ``identifier`` of this ``kind`` is consumed, ``False`` ever
        after (until ``until``), whichever replica asks. ``identifier``: the sealed value itself
        or its unique id; only its digest is stored. Refuse a ``False`` with ``invalid_grant``
        (a code) or as an expired consent (a consent ticket)."""
        if not _KIND.fullmatch(kind):
            raise ValueError("kind must be 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter")
        return await self._checked("consume_once", self.store.consume_once(kind, identifier, until), True)

    async def use_refresh(self, family: str, token_id: str, until: float) -> RefreshUse:
        """Record the use of refresh token ``token_id`` of ``family`` (RFC 9700 §4.14.2).

        :attr:`RefreshUse.FIRST_USE`: honour it (and issue the next token of the family);
        :attr:`RefreshUse.REUSED`: it was used before, the whole family is revoked now;
        :attr:`RefreshUse.REVOKED`: the family was revoked before. ``until``: the latest time
        any token of this family can still be honoured (for rotating tokens: now plus the
        refresh-token lifetime); both the used mark and a revocation are kept that long."""
        return await self._checked("use_refresh", self.store.use_refresh(family, token_id, until), RefreshUse.FIRST_USE)

    async def release_refresh(self, family: str, token_id: str) -> bool:
        """Forget that refresh token ``token_id`` of ``family`` was used, unless the family
        was revoked meanwhile (a revocation stands): the IdP failed to answer the refresh, so
        the client never got the next token and will present this one again. Whether a mark
        was released; ``False`` too when the store did not answer (a warning is logged and
        nothing is raised, whatever ``on_unavailable`` says: the refresh is answered with the
        IdP's error either way, and the retry will then count as a reuse)."""
        try:
            return await self.store.release_refresh(family, token_id)
        except StoreUnavailable as exc:
            self._warning.warn("strict mode: %s, release_refresh not done (a retry of that token will revoke its family)", exc)
            return False

    async def is_family_revoked(self, family: str) -> bool:
        """Whether ``family`` was revoked (by reuse or :meth:`revoke_family`)."""
        return await self._checked("is_family_revoked", self.store.is_family_revoked(family), False)

    async def revoke_family(self, family: str, until: float) -> None:
        """Revoke every token of ``family`` until ``until`` (RFC 7009 §2.1: revoking a refresh
        token may revoke its whole grant); a later or earlier revocation never shortens it."""
        await self._checked("revoke_family", self.store.revoke_family(family, until), None)

    async def hit(self, bucket: RateBucket, key: str) -> RateDecision:
        """Count one request of ``key`` in ``bucket``; refuse a :class:`RateDecision` that is
        not ``allowed`` with 429 and its ``headers`` (``Retry-After``, RFC 6585 §4)."""
        return await self._checked("hit", self.store.hit(bucket, key), ALLOWED)

    async def aclose(self) -> None:
        """Close the store's connections (the shim's lifespan calls this on shutdown)."""
        await self.store.aclose()

    async def _checked(self, operation: str, call: Awaitable[T], as_if_off: T) -> T:
        try:
            return await call
        except StoreUnavailable as exc:
            if self.on_unavailable == "allow":
                self._warning.warn("strict mode: %s, %s answered as without strict mode", exc, operation)
                return as_if_off
            self._warning.warn("strict mode: %s, %s refused with 503", exc, operation)
            raise StrictModeUnavailable(self.unavailable_retry_after) from None

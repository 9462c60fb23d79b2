"""Strict-mode records in this process's memory: single use without Redis, for one replica.

Everything here runs between two ``await`` points of one event loop, so each operation is
atomic without a lock. It covers **one process only**: a second replica (or a second uvicorn
worker) keeps records of its own and will accept a code this one already consumed. Each kind
of record has its own bounded memo (:class:`~mcp_oauth_shim.memo.BoundedMemo`), so a flood of
rate-limit keys cannot push single-use marks out; a memo that is full forgets its least
recently used record first, which for single-use marks means a value consumed more than
``max_entries`` consumptions ago could be used once more within its lifetime: size
``max_entries`` above the number of codes and consent tickets issued per code lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..memo import BoundedMemo
from .limits import ALLOWED, RateBucket, RateDecision, RateLimits, gcra, refused_after_ms
from .store import RETENTION_MARGIN_SECONDS, RefreshUse, digest

__all__ = ["MemoryStore"]


class MemoryStore:
    """The :class:`~mcp_oauth_shim.strict.store.StrictStore` of a single process."""

    covers_replicas = False

    def __init__(
        self,
        rate_limits: RateLimits,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate_limits = rate_limits
        self._clock = clock
        self._once: BoundedMemo[str, bool] = BoundedMemo(max_entries)
        self._used_refresh: BoundedMemo[str, bool] = BoundedMemo(max_entries)
        self._revoked: BoundedMemo[str, float] = BoundedMemo(max_entries)  # value: its own deadline
        self._tats: BoundedMemo[str, float] = BoundedMemo(max_entries)

    @staticmethod
    def _mark_first(marks: BoundedMemo[str, bool], key: str, until: float, now: float) -> bool:
        """Mark ``key`` until ``until`` (plus the margin) unless it is marked; whether it was not."""
        if marks.get(key, now) is not None:
            return False
        marks.put(key, True, until + RETENTION_MARGIN_SECONDS)
        return True

    async def consume_once(self, kind: str, identifier: str, until: float) -> bool:
        return self._mark_first(self._once, f"{kind}:{digest(identifier)}", until, self._clock())

    async def use_refresh(self, family: str, token_id: str, until: float) -> RefreshUse:
        family_key = digest(family)
        now = self._clock()
        if self._revoked.get(family_key, now) is not None:
            return RefreshUse.REVOKED
        if self._mark_first(self._used_refresh, f"{family_key}:{digest(token_id)}", until, now):
            return RefreshUse.FIRST_USE
        self._revoke(family_key, until, now)
        return RefreshUse.REUSED

    async def release_refresh(self, family: str, token_id: str) -> bool:
        if await self.is_family_revoked(family):
            return False
        return self._used_refresh.pop(f"{digest(family)}:{digest(token_id)}") is not None

    async def is_family_revoked(self, family: str) -> bool:
        return self._revoked.get(digest(family), self._clock()) is not None

    async def revoke_family(self, family: str, until: float) -> None:
        self._revoke(digest(family), until, self._clock())

    def _revoke(self, family_key: str, until: float, now: float) -> None:
        deadline = until + RETENTION_MARGIN_SECONDS
        known = self._revoked.get(family_key, now)
        if known is None or known < deadline:
            self._revoked.put(family_key, deadline, deadline)

    async def hit(self, bucket: RateBucket, key: str) -> RateDecision:
        limit = self.rate_limits.for_bucket(bucket)
        if limit is None:
            return ALLOWED
        now_ms = self._clock() * 1000
        memo_key = f"{bucket.value}:{digest(key)}"
        step = gcra(self._tats.get(memo_key, now_ms / 1000), now_ms, limit)
        if not step.allowed:
            return refused_after_ms(step.wait_ms)
        self._tats.put(memo_key, step.new_tat_ms, step.new_tat_ms / 1000)
        return ALLOWED

    async def aclose(self) -> None:
        return None

"""Bounded memory: every cache the shim and the bridge keep has a size limit and, where its
values age, a deadline.

Nothing a request sends may grow the process without bound (a stream of distinct tokens, client
IDs or Host headers would otherwise fill memory), so every memo here forgets its least recently
used entry when full. Two shapes cover every use:

- :class:`BoundedMemo`: key to value, least recently used out first, optionally with a
  per-entry deadline on a caller-given clock (verified tokens, resolved client IDs, fetched
  documents, refusals);
- :class:`SingleFlight`: concurrent asks for the same key share one running coroutine (one
  introspection, one document fetch, one JWKS refetch), never more than one per key at a time.

``functools.lru_cache`` stays the right tool for pure functions of a few strings (redirect URI
checks, scope parsing); these classes are for everything keyed by what a request carries.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["BoundedMemo", "SingleFlight"]


class BoundedMemo(Generic[K, V]):
    """At most ``max_entries`` values, the least recently used forgotten first.

    With ``expires``, an entry is returned only while ``now < deadline`` (the caller passes
    ``now`` from its own clock, so tests and callers decide what time is); an expired entry is
    dropped when met. ``max_entries=0`` disables the memo: :meth:`put` keeps nothing.
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K, now: float = 0.0) -> V | None:
        """The value for ``key`` if present and not expired at ``now``; else ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if now >= deadline:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, deadline: float = float("inf")) -> None:
        """Remember ``value`` until ``deadline`` (same clock as :meth:`get`'s ``now``)."""
        if self.max_entries == 0:
            return
        self._entries[key] = (value, deadline)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value if it was there."""
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[0]

    def clear(self) -> None:
        self._entries.clear()


class SingleFlight(Generic[K, V]):
    """One running coroutine per key; concurrent callers with that key await the same result.

    A caller that is cancelled does not cancel the shared work for the others (the work is a
    task, shielded per waiter); the task is forgotten when it ends, so a later call runs again.
    Exceptions reach every waiter of that run.
    """

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done, key=key: self._forget(key, done))  # type: ignore[misc]
        return await asyncio.shield(task)

    def _forget(self, key: K, done: asyncio.Task[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved, so a failure no waiter saw is not logged as unhandled

"""Strict-mode records in Redis, shared by every replica (the ``redis`` extra).

Each operation is one round trip and atomic on the server: ``SET NX PX`` for single use, a
Lua script (registered with redis-py's ``register_script``: ``EVALSHA``, reloaded on
``NOSCRIPT``) for refresh families (use, release, revoke) and for GCRA. Every call is bounded: socket timeouts of
``timeout`` seconds, at most one immediate retry (a pooled connection that Redis closed, after
a restart, fails once and is replaced), and the whole call under ``asyncio.timeout(timeout)``.
Any failure to get an answer, and any error reply (a Redis that is up but refuses to write),
becomes :class:`~mcp_oauth_shim.strict.store.StoreUnavailable`.

Key layout (``P`` is the key prefix, every ``<…>`` a SHA-256 hex digest; ``{…}`` is a Redis
Cluster hash tag, so a family's keys live in one slot)::

    P once:<kind>:<identifier>              "1"         until the value expires (+ margin)
    P refresh:{<family>}:used:<token id>    "1"         until the family's tokens expire
    P refresh:{<family>}:revoked            "1"         same
    P rate:<bucket>:<key>                   TAT in ms   until the TAT has passed
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    InvalidResponse,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .limits import ALLOWED, RateBucket, RateDecision, RateLimits, refused_after_ms
from .store import RETENTION_MARGIN_SECONDS, RefreshUse, StoreUnavailable, digest

__all__ = ["MAX_CONNECTIONS", "RedisStore"]

T = TypeVar("T")

#: Calls one store has in flight, and so connections it opens to Redis, at most; a call
#: finding them all busy waits for a slot within its ``timeout``. Each call holds one for a
#: round trip (well under a millisecond on a healthy Redis), so 50 carry tens of thousands of
#: calls a second, while a slow Redis under a burst is not met with one new socket per request
#: (redis-py's own default is unbounded in the versions this package supports, or refuses at
#: once past 100 in newer ones).
MAX_CONNECTIONS = 50

# KEYS[1] the family's revoked mark, KEYS[2] this token's used mark; ARGV[1] lifetime in ms.
# 0: first use; 1: reused, the family is revoked now; 2: the family was revoked already.
USE_REFRESH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('SET', KEYS[1], '1', 'PX', ttl) end
return 1
"""

# KEYS[1] the family's revoked mark, KEYS[2] this token's used mark. 1: the used mark was
# deleted; 0: there was none, or the family is revoked (then the mark stays, as a record).
RELEASE_REFRESH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('DEL', KEYS[2])
"""

# KEYS[1] the family's revoked mark; ARGV[1] lifetime in ms. A revocation never shortens one.
REVOKE_FAMILY = """
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('SET', KEYS[1], '1', 'PX', ttl) end
return 1
"""

# GCRA (mcp_oauth_shim.strict.limits.gcra) on the Redis server's clock. KEYS[1] the TAT;
# ARGV[1] interval in ms, ARGV[2] period in ms. {1, 0}: admitted; {0, wait in ms}: refused.
# Before Redis 7, a script that reads TIME may write only with effects replication on.
GCRA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local admit_at = new_tat - tonumber(ARGV[2])
if now < admit_at then return {0, admit_at - now} end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', new_tat - now)
return {1, 0}
"""

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # refused, reset, closed, authentication failed, loading
    RedisTimeoutError,
    ReadOnlyError,  # a replica promoted away from under us
    OutOfMemoryError,  # maxmemory reached under the noeviction policy
    ClusterDownError,  # a cluster without a quorum, or a slot without its master
    TryAgainError,  # a cluster slot being migrated
    InvalidResponse,  # not Redis at that address (a web server, memcached): its answer does not parse
    OSError,
    TimeoutError,  # asyncio.timeout
)


def refusal_code(exc: ResponseError) -> str:
    """The error code a Redis error reply starts with (``NOREPLICAS``, ``MISCONF``, ``BUSY``):
    the reply's first word when it is upper case, else ``ERR``; for the codes redis-py raises as
    a class of their own, without the code in the text, that class's name (``MovedError``: a
    Redis Cluster node, ``NoPermissionError``: an ACL refusal). The rest of the reply may name
    keys, so only the code is logged."""
    if type(exc) is not ResponseError:
        return type(exc).__name__
    word = str(exc).split(" ", 1)[0]
    return word if word.isalpha() and word.isupper() else "ERR"


class RedisStore:
    """The :class:`~mcp_oauth_shim.strict.store.StrictStore` shared by all replicas."""

    covers_replicas = True

    def __init__(
        self,
        client: Redis,
        rate_limits: RateLimits,
        *,
        key_prefix: str = "mcp-oauth-shim:",
        timeout: float = 0.5,
        reconnect: Callable[[], Redis] | None = None,
    ) -> None:
        """``reconnect``: makes a client like ``client``, for each event loop after the first
        (see :meth:`_slots`); without it, ``client`` serves one event loop only."""
        self.rate_limits = rate_limits
        self.key_prefix = key_prefix
        self.timeout = timeout
        self._reconnect = reconnect
        self._use_client(client)
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._slots_semaphore = asyncio.Semaphore(MAX_CONNECTIONS)

    def _use_client(self, client: Redis) -> None:
        self.client = client
        self._use_refresh = client.register_script(USE_REFRESH)
        self._release_refresh = client.register_script(RELEASE_REFRESH)
        self._revoke_family = client.register_script(REVOKE_FAMILY)
        self._gcra = client.register_script(GCRA)

    @classmethod
    def from_url(
        cls, url: str, rate_limits: RateLimits, *, key_prefix: str = "mcp-oauth-shim:", timeout: float = 0.5
    ) -> RedisStore:
        """A store on its own connection pool to ``url`` (``redis://``, ``rediss://``,
        ``unix://``; credentials and database in the URL as redis-py reads them)."""

        def connect() -> Redis:
            return Redis.from_url(
                url,
                max_connections=MAX_CONNECTIONS,  # never reached: calls wait for a slot first (_bounded)
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=30,
            )

        client = connect()
        try:
            # redis-py checks some of the URL's settings (ssl_cert_reqs) only when it builds a
            # connection, at the first call: build one now (no I/O), so that such a URL is
            # refused at configuration and not with an error on every strict request.
            client.connection_pool.make_connection()
        except RedisError as exc:
            raise ValueError(f"The Redis URL holds a setting redis-py refuses ({type(exc).__name__}).") from None
        return cls(client, rate_limits, key_prefix=key_prefix, timeout=timeout, reconnect=connect)

    def _lifetime_ms(self, until: float) -> int:
        """Milliseconds from now to ``until`` plus the margin; at least one second."""
        return max(1000, math.ceil((until - time.time() + RETENTION_MARGIN_SECONDS) * 1000))

    def _revoked_key(self, family: str) -> str:
        return f"{self.key_prefix}refresh:{{{digest(family)}}}:revoked"

    def _refresh_keys(self, family: str, token_id: str) -> list[str]:
        """The family's revoked mark and the token's used mark (the scripts' KEYS)."""
        return [self._revoked_key(family), f"{self.key_prefix}refresh:{{{digest(family)}}}:used:{digest(token_id)}"]

    def _slots(self) -> asyncio.Semaphore:
        """At most :data:`MAX_CONNECTIONS` calls at a time on this event loop (a semaphore
        belongs to the loop it first waited on: a new loop, a new one). A semaphore rather
        than redis-py's ``BlockingConnectionPool``: measured against a local redis-server, the
        blocking pool made each call 10-15 % slower, an uncontended semaphore costs nothing.

        A new loop gets a new client too: a redis.asyncio connection (and its pool's lock)
        belongs to the loop that opened it, and one used on another loop fails with
        ``RuntimeError`` (Starlette's ``TestClient`` without ``with`` runs each request on a
        loop of its own). The old loop's connections are left to it (it may be closed)."""
        loop = asyncio.get_running_loop()
        if self._slots_loop is not loop:
            if self._slots_loop is not None and self._reconnect is not None:
                self._use_client(self._reconnect())
            self._slots_loop, self._slots_semaphore = loop, asyncio.Semaphore(MAX_CONNECTIONS)
        return self._slots_semaphore

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout), self._slots():  # waiting for a slot counts too
                return await call()
        except UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"Redis did not answer ({type(exc).__name__})") from None
        except ResponseError as exc:
            # Up, but refusing the command: writes stopped for want of replicas (NOREPLICAS) or
            # of a disk to persist to (MISCONF), a script running too long (BUSY). Strict mode
            # cannot check the request all the same, so the operator's choice applies.
            raise StoreUnavailable(f"Redis refused the command ({refusal_code(exc)})") from None

    async def consume_once(self, kind: str, identifier: str, until: float) -> bool:
        key = f"{self.key_prefix}once:{kind}:{digest(identifier)}"
        lifetime = self._lifetime_ms(until)
        stored = await self._bounded(lambda: self.client.set(key, b"1", nx=True, px=lifetime))
        return bool(stored)

    async def use_refresh(self, family: str, token_id: str, until: float) -> RefreshUse:
        keys = self._refresh_keys(family, token_id)
        args = [self._lifetime_ms(until)]
        answer: Any = await self._bounded(lambda: self._use_refresh(keys=keys, args=args))
        return (RefreshUse.FIRST_USE, RefreshUse.REUSED, RefreshUse.REVOKED)[int(answer)]

    async def release_refresh(self, family: str, token_id: str) -> bool:
        keys = self._refresh_keys(family, token_id)
        answer: Any = await self._bounded(lambda: self._release_refresh(keys=keys))
        return bool(answer)

    async def is_family_revoked(self, family: str) -> bool:
        key = self._revoked_key(family)
        found: Any = await self._bounded(lambda: self.client.exists(key))
        return bool(found)

    async def revoke_family(self, family: str, until: float) -> None:
        keys = [self._revoked_key(family)]
        args = [self._lifetime_ms(until)]
        await self._bounded(lambda: self._revoke_family(keys=keys, args=args))

    async def hit(self, bucket: RateBucket, key: str) -> RateDecision:
        limit = self.rate_limits.for_bucket(bucket)
        if limit is None:
            return ALLOWED
        keys = [f"{self.key_prefix}rate:{bucket.value}:{digest(key)}"]
        args = [limit.interval_ms, limit.period_ms]
        answer: Any = await self._bounded(lambda: self._gcra(keys=keys, args=args))
        admitted, wait_ms = int(answer[0]), int(answer[1])
        return ALLOWED if admitted else refused_after_ms(wait_ms)

    async def aclose(self) -> None:
        if self._slots_loop not in (None, asyncio.get_running_loop()) and self._reconnect is not None:
            # The client's connections belong to another loop, which may be closed: they cannot
            # be closed from this one. The next call gets a new client.
            self._use_client(self._reconnect())
            self._slots_loop = None
            return
        await self.client.aclose()

"""A Redis that is up but refuses to write (a real redis-server configured as operators do):
strict mode must treat it as unavailable (503 with ``Retry-After``, or the "allow" fallback),
never let the server's error reach the endpoint as an exception it does not know."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from mcp_oauth_shim.strict import RateBucket, RateLimit, RateLimits, RefreshUse, StrictMode, StrictModeUnavailable
from tests.peers.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TIMEOUT = 0.5
HANG_GUARD = 10  # a liveness guard only, far above TIMEOUT

# The write operations and what each answers under on_unavailable="allow".
WRITES: list[tuple[str, Callable[[StrictMode], Awaitable[object]], object]] = [
    ("consume_once", lambda m: m.consume_once("code", "sealed-code", time.time() + 300), True),
    ("use_refresh", lambda m: m.use_refresh("family", "token-1", time.time() + 300), RefreshUse.FIRST_USE),
    ("revoke_family", lambda m: m.revoke_family("family", time.time() + 300), None),
]


def refuse_writes_without_replicas(server: RedisServer) -> None:
    """``min-replicas-to-write 1`` on a master with no replica: every write is answered
    ``-NOREPLICAS Not enough good replicas to write.`` (a durability setting, and what a
    master sees when its replicas drop off)."""
    with server.client() as admin:
        admin.config_set("min-replicas-to-write", "1")


@pytest.mark.parametrize(("name", "operation", "_"), WRITES, ids=[w[0] for w in WRITES])
async def test_a_redis_refusing_writes_for_want_of_replicas_refuses_with_unavailable(
    own_redis_server: RedisServer, key_prefix: str, name: str, operation: Callable[[StrictMode], Awaitable[object]], _: object
) -> None:
    refuse_writes_without_replicas(own_redis_server)
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, unavailable_retry_after=3)
    try:
        with anyio.fail_after(HANG_GUARD), pytest.raises(StrictModeUnavailable) as refused:
            await operation(mode)
        assert refused.value.headers == {"Retry-After": "3"}
    finally:
        await mode.aclose()


@pytest.mark.parametrize(("name", "operation", "as_if_off"), WRITES, ids=[w[0] for w in WRITES])
async def test_a_redis_refusing_writes_with_allow_answers_as_without_strict_mode(
    own_redis_server: RedisServer,
    key_prefix: str,
    name: str,
    operation: Callable[[StrictMode], Awaitable[object]],
    as_if_off: object,
) -> None:
    refuse_writes_without_replicas(own_redis_server)
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, on_unavailable="allow")
    try:
        with anyio.fail_after(HANG_GUARD):
            assert await operation(mode) == as_if_off
    finally:
        await mode.aclose()


async def test_a_rate_limit_on_a_redis_refusing_writes_refuses_with_unavailable(
    own_redis_server: RedisServer, key_prefix: str
) -> None:
    refuse_writes_without_replicas(own_redis_server)
    limits = RateLimits(register_ip=RateLimit(5, 60))
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, rate_limits=limits)
    try:
        with anyio.fail_after(HANG_GUARD), pytest.raises(StrictModeUnavailable):
            await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7")
    finally:
        await mode.aclose()

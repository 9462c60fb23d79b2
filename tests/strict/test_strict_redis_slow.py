"""A slow Redis (a real redis-server busy running a long script) under a burst of requests:
the shim's connections to it stay bounded, and a request finding them all busy waits for one
within its timeout rather than opening a socket of its own or being refused at once."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from mcp_oauth_shim.strict import StrictMode, StrictModeUnavailable
from mcp_oauth_shim.strict.redis_store import MAX_CONNECTIONS
from tests.peers.redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

BURST = 4 * MAX_CONNECTIONS
HANG_GUARD = 20  # a liveness guard only

# Keeps the server busy for about 1.5 s: every other client's command waits behind it.
BUSY_SCRIPT = """
local function now() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local start = now()
while now() - start < 1500000 do end
return 1
"""


def connected_clients(server: RedisServer) -> int:
    with server.client() as admin:
        return int(admin.info("clients")["connected_clients"])


async def test_a_burst_against_a_slow_redis_opens_a_bounded_number_of_connections(
    own_redis_server: RedisServer, key_prefix: str
) -> None:
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=5.0)
    outcomes: list[str] = []

    async def consume(n: int) -> None:
        try:
            await mode.consume_once("code", f"code-{n}", time.time() + 300)
            outcomes.append("answered")
        except StrictModeUnavailable:
            outcomes.append("unavailable")

    def keep_busy() -> None:
        with own_redis_server.client() as busy:
            busy.eval(BUSY_SCRIPT, 0)

    try:
        await mode.consume_once("code", "warm-up", time.time() + 300)
        script = threading.Thread(target=keep_busy)
        script.start()
        await anyio.sleep(0.3)  # the script is running: Redis answers nobody until it ends
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as tasks:
                for n in range(BURST):
                    tasks.start_soon(consume, n)
        script.join()
        opened = connected_clients(own_redis_server) - 1  # this admin connection
    finally:
        await mode.aclose()
    assert opened <= MAX_CONNECTIONS
    # Redis answered every call within the timeout: waiting for a connection is no refusal.
    assert outcomes == ["answered"] * BURST

"""Strict mode's added cost per operation, in process, against a local redis-server.

``python bench/inproc_strict.py [--calls 5000] [--url redis://127.0.0.1:6379/0]``

Without ``--url`` it starts Debian's redis-server on a free loopback port (persistence off) and
stops it after. For each operation it prints the wall time per call (one loopback round trip
to Redis included: what a request waits) and the CPU time per call in this process
(``time.process_time``: what a request costs the shim), for the Redis store and the in-memory
store. A token call with strict mode runs ``hit`` twice (client+IP, IP) and ``consume_once``
(a code) or ``use_refresh`` (a refresh token); an authorization runs ``hit`` twice and, at
the consent step, ``consume_once`` (the consent ticket).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mcp_oauth_shim.strict import RateBucket, RateLimits, StrictMode  # noqa: E402


async def measure(name: str, calls: int, op: Callable[[int], Awaitable[object]]) -> None:
    for i in range(min(200, calls)):  # warm up: connections, script cache
        await op(-i - 1)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        await op(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {name:<34} {wall / calls * 1e6:8.1f} µs wall   {cpu / calls * 1e6:8.1f} µs CPU")


async def run(mode: StrictMode, label: str, calls: int) -> None:
    print(label)
    until = time.time() + 600
    tag = uuid.uuid4().hex
    code = "code." + "x" * 400  # a sealed code is a few hundred characters
    await measure("consume_once (first use)", calls, lambda i: mode.consume_once("code", f"{code}{tag}{i}", until))
    await measure("consume_once (replay)", calls, lambda i: mode.consume_once("code", f"{code}{tag}{-1}", until))
    await measure("use_refresh (first use)", calls, lambda i: mode.use_refresh(f"fam{tag}{i}", f"tok{i}", until))
    await measure("is_family_revoked", calls, lambda i: mode.is_family_revoked(f"fam{tag}{i}"))
    await measure("hit (admitted, distinct keys)", calls, lambda i: mode.hit(RateBucket.TOKEN_IP, f"{tag}{i}"))
    await measure("hit (refused, one key)", calls, lambda i: mode.hit(RateBucket.TOKEN_IP, tag))
    await mode.aclose()


async def main(url: str | None, calls: int) -> None:
    limits = RateLimits()
    if url is not None:
        await run(StrictMode.redis(url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}:", rate_limits=limits), f"Redis {url}", calls)
    else:
        from tests.peers.redis_server import run_redis

        with tempfile.TemporaryDirectory() as workdir, run_redis(Path(workdir)) as server:
            await run(StrictMode.redis(server.url, rate_limits=limits), "Redis (local redis-server, loopback)", calls)
    await run(StrictMode.in_memory(rate_limits=limits), "in memory", calls)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.calls))

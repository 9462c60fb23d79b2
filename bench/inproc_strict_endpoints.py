"""Strict mode's added cost per authorize and per token call, in process, end to end through the
shim's app (no server, no socket to the client).

``python bench/inproc_strict_endpoints.py [--calls 2000] [--rounds 3] [--url redis://...]``

The calls of ``bench/inproc_oauth.py`` (authorize: the consent page; token: an
authorization_code exchange, the IdP's answer given in-process), for the same shim without
strict mode, with strict mode in memory, and with strict mode on Redis (without ``--url`` a
redis-server of its own on a free loopback port, persistence off). Rate limits are on but set
far above the calls made, so every request pays for its counts without being refused:
authorize = 2 rate-limit counts; token = 2 rate-limit counts + the code's single use. Each
round measures the three modes one after the other; the medians of wall time (which includes
the Redis round trips) and CPU time (this process only) per request are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.inproc_oauth import prepare  # noqa: E402
from mcp_oauth_shim.strict import RateLimit, RateLimits, StrictMode  # noqa: E402

ENDPOINTS = ("authorize", "token")
# Limits that count every request and refuse none in a benchmark run.
UNREACHED = RateLimit(10**9, 60.0)
LIMITS = RateLimits(UNREACHED, UNREACHED, UNREACHED, UNREACHED, UNREACHED)


@asynccontextmanager
async def redis_url(given: str | None) -> AsyncIterator[str]:
    if given is not None:
        yield given
        return
    from tests.peers.redis_server import run_redis

    with tempfile.TemporaryDirectory() as workdir, run_redis(Path(workdir)) as server:
        yield server.url


async def main_async(a: argparse.Namespace) -> int:
    async with redis_url(a.url) as url:
        modes: dict[str, StrictMode | None] = {
            "off": None,
            "in memory": StrictMode.in_memory(rate_limits=LIMITS),
            "Redis": StrictMode.redis(url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}:", rate_limits=LIMITS),
        }
        warmup = min(200, a.calls)
        prepared = {name: await prepare(warmup + a.calls * a.rounds, strict=mode) for name, mode in modes.items()}
        wall: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for calls, _ in prepared.values():
            for endpoint in ENDPOINTS:
                for i in range(warmup):
                    await calls[endpoint](i)
        for r in range(a.rounds):
            for endpoint in ENDPOINTS:
                for name, (calls, checks) in prepared.items():
                    start = warmup + r * a.calls
                    w0, c0 = time.perf_counter(), time.process_time()
                    for i in range(start, start + a.calls):
                        response = await calls[endpoint](i)
                    wall.setdefault((endpoint, name), []).append((time.perf_counter() - w0) / a.calls * 1e6)
                    cpu.setdefault((endpoint, name), []).append((time.process_time() - c0) / a.calls * 1e6)
                    if not checks[endpoint](response):
                        raise RuntimeError(f"{endpoint} ({name}): unexpected answer {response[0]} {response[1][:200]!r}")
        for mode in modes.values():
            if mode is not None:
                await mode.aclose()

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    print(f"in-process µs per request, strict mode off / in memory / Redis (medians of {a.rounds} rounds x {a.calls}):")
    for endpoint in ENDPOINTS:
        base_wall, base_cpu = median(wall[(endpoint, "off")]), median(cpu[(endpoint, "off")])
        for name in modes:
            w, c = median(wall[(endpoint, name)]), median(cpu[(endpoint, name)])
            added = "" if name == "off" else f"   added: {w - base_wall:+8.1f} wall {c - base_cpu:+8.1f} CPU"
            print(f"  {endpoint:9s} {name:9s} {w:8.1f} µs wall {c:8.1f} µs CPU{added}")
    print("  token excludes the exchange with the IdP (answered in-process).")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default=None, help="an existing Redis (default: start a redis-server)")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

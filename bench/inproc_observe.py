"""In-process cost of observation: the request-id middleware, and metrics on a tool call.

``python bench/inproc_observe.py [--calls 5000] [--rounds 5]``

1. The request-id middleware around a trivial ASGI app, with and without an incoming
   ``X-Request-ID``: its own cost per request (CPU time, medians of rounds).
2. One observation point alone (``with telemetry.tool_call(name)``, what the bridge adds to a
   tool call), with metrics off, metrics on, and metrics and tracing on.
3. An authenticated ``tools/call`` of the bridge behind the shim (a real access token from the
   development IdP, verified by the shim; the app of ``bench/memory.py``): metrics off, then
   on. The difference is what metrics add to the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.inproc import Lifespan, mcp_headers, request  # noqa: E402
from bench.memory import access_token, build  # noqa: E402


async def cost(fn: Callable[[], Awaitable[None]], n: int, rounds: int) -> float:
    """Median CPU µs per call over ``rounds`` rounds of ``n`` calls (after a warm-up)."""
    for _ in range(min(500, n)):
        await fn()
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            await fn()
        results.append((time.process_time() - started) / n * 1e6)
    return sorted(results)[len(results) // 2]


async def trivial(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def middleware_cost(n: int, rounds: int) -> None:
    from mcp_oauth_shim.request_id import RequestIdMiddleware

    wrapped = RequestIdMiddleware(trivial)
    given = [(b"x-request-id", b"0f8fad5b-d9cb-469f-a165-70867728950e")]

    async def bare() -> None:
        await request(trivial, "GET", "/", b"", [])

    async def made() -> None:
        await request(wrapped, "GET", "/", b"", [])

    async def taken() -> None:
        await request(wrapped, "GET", "/", b"", given)

    base = await cost(bare, n, rounds)
    with_made = await cost(made, n, rounds)
    with_taken = await cost(taken, n, rounds)
    print(
        f"request-id middleware: trivial app {base:.2f} us/request; + middleware (id made) {with_made - base:+.2f} us; "
        f"(id taken from the request) {with_taken - base:+.2f} us"
    )


async def tool_call_cost(n: int, rounds: int) -> None:
    from mcp_oauth_shim import metrics

    idp, http, shim, _, _ = build(metrics=False)
    # The bridged app without the request-id middleware: the hot path as the bridge serves it.
    from fastapi import FastAPI

    from mcp_bridge import MCPBridge

    api = FastAPI()

    @api.get("/items/{item_id}", operation_id="get_item")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    MCPBridge(api, auth=shim).mount_http("/mcp", stateless=True)
    async with Lifespan(api):
        token = await access_token(idp, http)
        headers = [*mcp_headers(None), (b"authorization", b"Bearer " + token.encode())]
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_item", "arguments": {"item_id": 7}}}
        ).encode()

        async def call() -> None:
            status, answer, _ = await request(api, "POST", "/mcp", body, headers)
            if status != 200 or b'"isError":true' in answer:
                raise RuntimeError(f"tools/call answered {status}: {answer[:300]!r}")

        results = {}
        for label, on in (("off", False), ("on", True), ("off again", False), ("on again", True)):
            if on:
                metrics.enable_metrics()
            else:
                metrics.disable_metrics()
            results[label] = await cost(call, n, rounds)
        metrics.disable_metrics()
    await http.aclose()
    off = min(results["off"], results["off again"])
    on = min(results["on"], results["on again"])
    print(
        "authenticated tools/call behind the shim: "
        + ", ".join(f"metrics {k} {v:.1f} us" for k, v in results.items())
        + f"; metrics add {on - off:+.1f} us/call (best of each)"
    )


def observation_point_cost(n: int, rounds: int) -> None:
    from mcp_oauth_shim import metrics, telemetry, tracing

    def loop() -> float:
        results = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(n):
                with telemetry.tool_call("get_item"):
                    pass
            results.append((time.process_time() - started) / n * 1e6)
        return sorted(results)[len(results) // 2]

    metrics.disable_metrics()
    off = loop()
    metrics.enable_metrics()
    on = loop()
    tracing.enable_tracing()  # the API's no-op tracer unless an SDK is configured
    traced = loop()
    tracing.disable_tracing()
    metrics.disable_metrics()
    print(
        f"one tool-call observation point: off {off:.2f} us, metrics on {on:.2f} us, "
        f"metrics and tracing (no-op provider) on {traced:.2f} us"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    a = parser.parse_args()
    asyncio.run(middleware_cost(a.calls * 4, a.rounds))
    observation_point_cost(a.calls * 10, a.rounds)
    asyncio.run(tool_call_cost(a.calls, a.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

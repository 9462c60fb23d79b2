"""In-process cost of one tools/call vs the direct route, without any server or socket.

``python bench/inproc.py [--routes 10] [--mode stateless|stateful] [--calls 5000] [--profile]``

Drives the generated app's ASGI callable directly (lifespan included): the same JSON-RPC
``tools/call`` bytes the load generator sends, and the same direct POST. CPU time per call
(``time.process_time``) is far steadier than anything measured over sockets on a shared
machine, so this is the quick check for "did my change make the bridge cheaper?". The uvicorn
share (parsing, socket writes) is absent, so the ratio here is lower than the end-to-end one.
``--profile`` runs the tools/call loop under cProfile (deterministic: exact call counts, and
coroutines are attributed to their callers) and prints the top functions; ``--diff`` profiles
both loops and prints, per function, the self time the bridge adds to a call.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import genapp  # noqa: E402
from bench.loadgen import new_event_loop  # noqa: E402
from bench.mcpclient import ACCEPT, INITIALIZE, PROTOCOL_VERSION  # noqa: E402

ASGI = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


async def request(
    app: ASGI, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, dict]:
    """One HTTP request through the ASGI app; (status, body, response headers)."""
    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", str(len(body)).encode()), *headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []
    resp_headers: dict[bytes, bytes] = {}

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(msg: dict) -> None:
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]
            resp_headers.update(msg.get("headers", []))
        elif msg["type"] == "http.response.body":
            chunks.append(msg.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks), resp_headers


class Lifespan:
    """Runs the app's lifespan (the bridge's session manager lives there)."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict] = asyncio.Queue()

    async def __aenter__(self) -> Lifespan:
        self.task = asyncio.create_task(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbox.get, self.outbox.put)
        )
        await self.inbox.put({"type": "lifespan.startup"})
        msg = await self.outbox.get()
        if msg["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {msg}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


def mcp_headers(session: str | None) -> list[tuple[bytes, bytes]]:
    h = [
        (b"content-type", b"application/json"),
        (b"accept", ACCEPT.encode()),
        (b"mcp-protocol-version", PROTOCOL_VERSION.encode()),
    ]
    if session:
        h.append((b"mcp-session-id", session.encode()))
    return h


async def main_async(a: argparse.Namespace) -> int:
    from mcp_bridge import MCPBridge

    app = genapp.load(a.routes).app
    MCPBridge(app).mount_http("/mcp", stateless=a.mode == "stateless")
    async with Lifespan(app):
        status, body, headers = await request(app, "POST", "/mcp", json.dumps(INITIALIZE).encode(), mcp_headers(None))
        session = headers.get(b"mcp-session-id", b"").decode() or None
        await request(
            app, "POST", "/mcp", b'{"jsonrpc":"2.0","method":"notifications/initialized"}', mcp_headers(session)
        )
        from bench.mcpclient import decode

        _, listed, lh = await request(
            app, "POST", "/mcp", b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', mcp_headers(session)
        )
        tools = {t["name"]: t for t in decode(listed, lh.get(b"content-type", b"").decode())["result"]["tools"]}
        tool = tools[genapp.TARGET_OPERATION]
        call = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": tool["name"], "arguments": genapp.tool_arguments(tool["inputSchema"])},
            },
            separators=(",", ":"),
        ).encode()
        direct_body = genapp.target_direct_body()
        direct_headers = [(b"content-type", b"application/json")]

        async def one_call() -> None:
            st, b, _ = await request(app, "POST", "/mcp", call, mcp_headers(session))
            if st != 200 or genapp.TARGET_MARKER not in b or b'"isError":true' in b:
                raise RuntimeError(f"tools/call failed: {st} {b[:300]!r}")

        async def one_direct() -> None:
            st, b, _ = await request(app, "POST", genapp.target_direct_path(), direct_body, direct_headers)
            if st != 201:
                raise RuntimeError(f"direct POST failed: {st} {b[:300]!r}")

        async def cost(fn: Callable[[], Awaitable[None]], n: int) -> float:
            for _ in range(min(200, n)):
                await fn()
            t0 = time.process_time()
            for _ in range(n):
                await fn()
            return (time.process_time() - t0) / n * 1e6

        results: dict[str, list[float]] = {"direct": [], "tools/call": []}
        for _ in range(a.rounds):
            results["direct"].append(await cost(one_direct, a.calls))
            results["tools/call"].append(await cost(one_call, a.calls))
        med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
        direct, bridged = med["direct"], med["tools/call"]
        print(
            f"in-process, N={a.routes}, {a.mode}: direct {direct:.1f} us/call, tools/call {bridged:.1f} us/call; "
            f"bridge overhead {bridged - direct:.1f} us/call; capacity ratio {direct / bridged:.2f}x "
            f"(medians of {a.rounds} rounds x {a.calls} calls)"
        )
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(a.calls):
                await one_call()
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats("tottime").print_stats(a.top)
            stats.sort_stats("cumulative").print_stats(a.top)
            print(out.getvalue())
        if a.diff:
            print(await overhead_by_function(one_direct, one_call, a.calls, a.top))
    return 0


async def overhead_by_function(
    direct: Callable[[], Awaitable[None]], bridged: Callable[[], Awaitable[None]], calls: int, top: int
) -> str:
    """Where the bridge's overhead goes: self time per function, tools/call minus direct POST,
    in µs per call (cProfile's clock: inflated about 2x, but the ranking holds)."""
    per_call: list[dict[tuple[str, int, str], tuple[int, float]]] = []
    for fn in (direct, bridged):
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            await fn()
        prof.disable()
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        per_call.append({k: (v[1], v[2] / calls * 1e6) for k, v in stats.items()})
    before, after = per_call
    rows = []
    for key in before.keys() | after.keys():
        n0, t0 = before.get(key, (0, 0.0))
        n1, t1 = after.get(key, (0, 0.0))
        rows.append((t1 - t0, n0, n1, key))
    rows.sort(reverse=True)
    lines = [f"self time added by the bridge per call (µs, cProfile), top {top}:"]
    for delta, n0, n1, (file, line, name) in rows[:top]:
        where = f"{file.rsplit('site-packages/', 1)[-1].replace(str(ROOT) + '/', '')}:{line}({name})"
        lines.append(f"  {delta:6.2f}  calls {n0 // calls}->{n1 // calls}  {where}")
    lines.append(f"  total {sum(r[0] for r in rows):.1f} µs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--routes", type=int, default=10)
    p.add_argument("--mode", choices=["stateful", "stateless"], default="stateless")
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--diff", action="store_true", help="self time per function, tools/call minus direct")
    p.add_argument("--metrics", action="store_true", help="with Prometheus metrics recording (mcp_oauth_shim.metrics)")
    a = p.parse_args(argv)
    if a.metrics:
        from mcp_oauth_shim.metrics import enable_metrics

        enable_metrics()
    loop = new_event_loop()
    try:
        return loop.run_until_complete(main_async(a))
    finally:
        # Tasks a library left behind (e.g. sse-starlette's shutdown watcher) end with the loop.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


if __name__ == "__main__":
    sys.exit(main())

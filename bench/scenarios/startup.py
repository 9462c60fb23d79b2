"""Process start to first tools/list answered (500 routes), and memory after it.

Baseline: the same generated app without the bridge, process start to the first
``GET /openapi.json`` answered (that request runs ``app.openapi()``), and its RSS then. Each
round starts fresh processes, alternating the two; medians over rounds.
"""

from __future__ import annotations

import http.client
import statistics
import time

from bench.context import Ctx, available
from bench.mcpclient import Session
from bench.procs import Server
from bench.report import Row, delta_row, ratio_row, skipped_row

N = 500
TIMEOUT = 90.0


def _until(server: Server, attempt) -> float:
    """Seconds from spawn until ``attempt()`` succeeds (connection refused = not yet)."""
    deadline = time.perf_counter() + TIMEOUT
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log_tail()}")
        try:
            attempt()
            return time.perf_counter() - server.started_at
        except (ConnectionError, OSError):
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.005)


def _first_tools_list(server: Server) -> None:
    sess = Session(port=server.port)
    sess.initialize()
    msg, _, _ = sess.rpc("tools/list", {})
    if not msg["result"]["tools"]:
        raise RuntimeError("empty tools/list")


def _first_openapi(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/openapi.json")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or b'"paths"' not in body:
            raise RuntimeError(f"/openapi.json: {r.status}")
    finally:
        conn.close()


def run(ctx: Ctx) -> list[Row]:
    if not available("mcp_bridge"):
        return [
            skipped_row(
                "start to first tools/list, 500 routes",
                "plain app + openapi()",
                "<= 1.05x",
                "mcp_bridge not importable",
            )
        ]
    rounds = max(ctx.rounds, 1)
    times = {"bridge": [], "plain": []}
    rss = {"bridge": [], "plain": []}
    for i in range(rounds):
        for kind in ("plain", "bridge"):
            ctx.log(f"[startup] round {i + 1}/{rounds}: {kind}")
            if kind == "plain":
                s = ctx.spawn("plain", routes=N, _wait=False)
                t = _until(s, lambda s=s: _first_openapi(s))
            else:
                s = ctx.spawn("bridge", routes=N, stateless="0", _wait=False)
                t = _until(s, lambda s=s: _first_tools_list(s))
            times[kind].append(t)
            rss[kind].append(s.rss() / 2**20)
            ctx.stop(s)
    med = statistics.median
    tb, tp = med(times["bridge"]), med(times["plain"])
    mb, mp = med(rss["bridge"]), med(rss["plain"])
    ctx.extra["startup"] = {"times_s": times, "rss_mib": rss}
    ctx.log(f"  start->first answer: bridge {tb:.3f}s, plain {tp:.3f}s; RSS bridge {mb:.1f} MiB, plain {mp:.1f} MiB")
    return [
        ratio_row(f"start -> first tools/list, {N} routes", "plain app + app.openapi()", tb, tp, "<= 1.05x", " s"),
        delta_row(f"RSS after first tools/list, {N} routes", "plain app + app.openapi()", mb, mp, "<= +5", "MiB"),
    ]

"""The load generator's floor: a trivial raw ASGI app under the same uvicorn setup.

Its req/s is the most any measured server could reach on this machine with this client; the
client's own CPU per request shows how much more the client could drive (1 / client CPU).
"""

from __future__ import annotations

from bench.context import Case, Ctx
from bench.loadgen import encode_request, expect
from bench.report import Row, ratio_row


def run(ctx: Ctx) -> list[Row]:
    ctx.log("[floor] trivial ASGI app")
    s = ctx.spawn("trivial")
    req = [encode_request("GET", "/", host=f"127.0.0.1:{s.port}")]
    ok = expect(200, contains=b"ok")
    figs = ctx.compare([Case("trivial c=1", s, req, ok, 1), Case("trivial c=16", s, req, ok, 16)])
    ctx.stop(s)
    rows = []
    for c in (1, 16):
        f = figs[f"trivial c={c}"]
        capacity = 1e3 / f.client_cpu_ms_per_req if f.client_cpu_ms_per_req > 0 else float("inf")
        ctx.extra[f"floor_rps_c{c}"] = f.rps
        ctx.extra[f"loadgen_capacity_c{c}"] = capacity
        rows.append(
            ratio_row(
                f"load generator capacity (1/client CPU per req), c={c}",
                f"trivial ASGI app req/s, c={c}",
                capacity,
                f.rps,
                ">= 1.0x",
                " req/s",
                note="client not the limit when >= 1",
            )
        )
    return rows

"""tools/list with 500 routes vs the very same response bytes served pre-encoded.

The bridge's answer (JSON or SSE, whatever it sends) is captured once and written to a file; a
raw ASGI app on the same uvicorn setup serves it with the same content type. Both are loaded
at c=1 in interleaved rounds; the figure is the p50 ratio.
"""

from __future__ import annotations

from bench.context import RESULTS, Case, Ctx, available
from bench.report import Row, ratio_row, skipped_row
from bench.scenarios.common import open_session

N = 500


def run(ctx: Ctx) -> list[Row]:
    if not available("mcp_bridge"):
        return [skipped_row("tools/list p50, 500 routes", "pre-encoded bytes", "<= 3x", "mcp_bridge not importable")]
    ctx.log(f"[tools_list] N={N}")
    s = ctx.spawn("bridge", routes=N, stateless="0")
    sess, _ = open_session(s)
    _, raw, ctype = sess.rpc("tools/list", {}, rid=1)
    body_file = RESULTS / "generated" / f"tools_list_{N}.body"
    body_file.parent.mkdir(parents=True, exist_ok=True)
    body_file.write_bytes(raw)
    ctx.extra["tools_list_bytes"] = len(raw)
    ctx.extra["tools_list_content_type"] = ctype
    pre = ctx.spawn("preencoded", body=body_file, content_type=ctype or "application/json")
    # The same request must get the same bytes: an exact length plus the head of a JSON-RPC
    # result is a strict check that costs the client almost nothing on a 1 MiB body (a
    # substring scan of every answer would put the load generator into the measured latency).
    size = len(raw)
    head = raw[:120]

    def check(status: int, body: bytes) -> bool:
        return status == 200 and len(body) == size and body[:120] == head

    req = [sess.encode("tools/list", {}, rid=1)]
    figs = ctx.compare(
        [
            Case(f"tools/list N={N} c=1", s, req, check, 1),
            Case("pre-encoded tools/list bytes c=1", pre, [sess.encode("tools/list", {}, rid=1)], check, 1),
        ]
    )
    b, p = figs[f"tools/list N={N} c=1"], figs["pre-encoded tools/list bytes c=1"]
    return [
        ratio_row(
            f"tools/list p50, {N} routes ({len(raw) / 1024:.0f} KiB)",
            "same bytes pre-encoded",
            b.p50_ms,
            p.p50_ms,
            "<= 3x",
            " ms",
        ),
        ratio_row(
            f"tools/list CPU/req, {N} routes", "same bytes pre-encoded", b.cpu_ms_per_req, p.cpu_ms_per_req, "", " ms"
        ),
    ]

"""tools/call through the bridge vs a direct POST to the same route on the same server.

For each transport mode (stateful, stateless) and app size (N = 10, 500): one server runs the
generated app with the bridge at /mcp; in each round it is loaded with the direct POST and the
tools/call at c=1 and c=16, interleaved. Cost growth compares the bridge's server CPU per call
at N=500 with N=10 (c=16, medians).
"""

from __future__ import annotations

from bench.context import Case, Ctx, available
from bench.report import Row, growth_row, ratio_row, skipped_row
from bench.scenarios.common import CALL_CHECK, DIRECT_CHECK, call_request, direct_request, open_session

SIZES = (10, 500)
MODES = (("stateful", "0"), ("stateless", "1"))


def run(ctx: Ctx) -> list[Row]:
    if not available("mcp_bridge"):
        return [skipped_row("tools/call req/s via the bridge", "direct POST", ">= 0.7x", "mcp_bridge not importable")]
    rows: list[Row] = []
    for mode, flag in MODES:
        cpu_by_size: dict[int, float] = {}
        direct_cpu_by_size: dict[int, float] = {}
        for n in SIZES:
            ctx.log(f"[tools_call] {mode}, N={n}")
            s = ctx.spawn("bridge", routes=n, stateless=flag)
            sess, tool = open_session(s)
            call = [call_request(sess, tool)]
            direct = [direct_request(s)]
            cases = []
            for c in (1, 16):
                cases.append(Case(f"direct N={n} c={c} ({mode} srv)", s, direct, DIRECT_CHECK, c))
                cases.append(Case(f"tools/call {mode} N={n} c={c}", s, call, CALL_CHECK, c))
            figs = ctx.compare(cases)
            ctx.stop(s)
            for c in (1, 16):
                b = figs[f"tools/call {mode} N={n} c={c}"]
                d = figs[f"direct N={n} c={c} ({mode} srv)"]
                rows.append(
                    ratio_row(
                        f"tools/call req/s {mode} N={n} c={c}", "direct POST, same server", b.rps, d.rps, ">= 0.7x"
                    )
                )
                # Server CPU per request is far less sensitive to other load on a shared machine
                # than req/s: the capacity it implies is the noise-robust reading of the same target.
                rows.append(
                    ratio_row(
                        f"tools/call capacity by CPU/req {mode} N={n} c={c}",
                        "direct POST, same server",
                        1 / b.cpu_ms_per_req,
                        1 / d.cpu_ms_per_req,
                        ">= 0.7x",
                        "/ms",
                        note=f"{b.cpu_ms_per_req:.3f} vs {d.cpu_ms_per_req:.3f} ms CPU/req",
                    )
                )
            b16 = figs[f"tools/call {mode} N={n} c=16"]
            d16 = figs[f"direct N={n} c=16 ({mode} srv)"]
            rows.append(
                ratio_row(
                    f"tools/call p99 {mode} N={n} c=16", "direct POST p99", b16.p99_ms, d16.p99_ms, "<= 2x", " ms"
                )
            )
            cpu_by_size[n] = b16.cpu_ms_per_req
            direct_cpu_by_size[n] = d16.cpu_ms_per_req
        rows.append(
            growth_row(
                f"tools/call CPU/req growth N=10->500 ({mode})",
                "itself at N=10",
                cpu_by_size[500],
                cpu_by_size[10],
                "<= +5%",
                " ms",
            )
        )
        rows.append(
            growth_row(
                f"direct POST CPU/req growth N=10->500 ({mode} srv)",
                "itself at N=10",
                direct_cpu_by_size[500],
                direct_cpu_by_size[10],
                "",
                " ms",
            )
        )
    return rows

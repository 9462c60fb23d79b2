"""Run every benchmark scenario and print the summary table: ``python bench/run_all.py [--quick]``.

Scenarios (see bench/README.md): floor, tools_call, tools_list, startup, token, browser,
auth_call, issued, http_client. ``--only a,b`` runs some of them. Results go to
``bench/results/<UTC timestamp>.json`` (gitignored) and ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.context import RESULTS, Ctx  # noqa: E402
from bench.report import Row, table, write_json  # noqa: E402
from bench.serve import uvicorn_choices  # noqa: E402

SCENARIOS = ["floor", "tools_call", "tools_list", "startup", "token", "browser", "auth_call", "issued", "http_client"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 short round per figure: a smoke run, figures unreliable")
    p.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--duration", type=float, default=None, help="seconds recorded per measurement")
    p.add_argument("--out", type=Path, default=None, help="results JSON path")
    a = p.parse_args(argv)

    ctx = Ctx(quick=a.quick)
    if a.quick:
        ctx.rounds, ctx.duration, ctx.warmup = 1, 0.4, 0.2
    if a.rounds:
        ctx.rounds = a.rounds
    if a.duration:
        ctx.duration = a.duration
    names = [n for n in a.only.split(",") if n] or SCENARIOS
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}")

    load_core = procs.pin_self_to_load_core()
    loop, http = uvicorn_choices()
    env = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_core": procs.server_core(),
        "load_core": load_core,
        "uvicorn_loop": loop,
        "uvicorn_http": http,
        "rounds": ctx.rounds,
        "duration_s": ctx.duration,
        "warmup_s": ctx.warmup,
        "quick": ctx.quick,
    }
    ctx.log(f"bench: {env}")
    rows: list[Row] = []
    errors: dict[str, str] = {}
    t0 = time.time()
    try:
        for name in names:
            mod = importlib.import_module(f"bench.scenarios.{name}")
            try:
                rows.extend(mod.run(ctx))
            except Exception as e:  # noqa: BLE001 - one broken scenario must not hide the others' figures
                errors[name] = "".join(traceback.format_exception(e))
                ctx.log(f"[{name}] FAILED: {e}")
                rows.append(Row(name, "-", None, None, None, "error", "", False, str(e).splitlines()[0][:80]))
            finally:
                ctx.stop_all()
    finally:
        ctx.stop_all()
    if "floor" in names:
        rows.extend(_floor_margin(ctx))
    print(table(rows))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t0))
    payload = {
        "started_utc": stamp,
        "seconds": round(time.time() - t0, 1),
        "command": " ".join([Path(sys.executable).name, "bench/run_all.py", *(argv or sys.argv[1:])]),
        "environment": env,
        "rows": rows,
        "figures": ctx.figures,
        "extra": ctx.extra,
        "errors": errors,
    }
    out = a.out or RESULTS / f"{stamp}.json"
    write_json(out, payload)
    write_json(RESULTS / ("latest-quick.json" if a.quick else "latest.json"), payload)
    print(f"\nresults: {out}")
    for name, tb in errors.items():
        print(f"\n--- {name} failed ---\n{tb}", file=sys.stderr)
    return 1 if errors else 0


def _floor_margin(ctx: Ctx) -> list[Row]:
    """Was the load generator ever the limit? Its busiest share of CPU over any measured window
    (trivial floor excluded) and the fastest server measured vs what the client can drive."""
    from bench.report import ratio_row

    others = {k: f for k, f in ctx.figures.items() if not k.startswith("trivial")}
    capacity = ctx.extra.get("loadgen_capacity_c16")
    if not others or not capacity:
        return []
    name, best = max(others.items(), key=lambda kv: kv[1].rps)
    busiest = max(others.values(), key=lambda f: f.client_busy)
    return [
        ratio_row(
            f"fastest measured server ({name})",
            "load generator capacity c=16",
            best.rps,
            capacity,
            "<= 0.9x",
            " req/s",
            note=f"client CPU busy at most {busiest.client_busy:.0%} ({busiest.name})",
        )
    ]


if __name__ == "__main__":
    sys.exit(main())

"""The browser legs: GET /oauth/authorize -> consent page, and the callback relay, vs a
trivial Starlette route served by the same Starlette app in the same process.

Callbacks are distinct per request (own signed state and binding cookie, made with the shim's
sealing API from one real flow), so a single-use rule cannot distort the run.
"""

from __future__ import annotations

from urllib.parse import urlencode

from bench.context import Case, Ctx, available
from bench.loadgen import encode_request, expect
from bench.oauthflow import Resealer
from bench.report import Row, ratio_row, skipped_row
from bench.scenarios.oauth_setup import start_shim

MAX_RATE = 6000


def run(ctx: Ctx) -> list[Row]:
    if not available("mcp_oauth_shim"):
        return [
            skipped_row(
                "GET /oauth/authorize; callback", "trivial Starlette route", ">= 0.5x", "mcp_oauth_shim not importable"
            )
        ]
    ctx.log("[browser] authorize page and callback relay vs a trivial Starlette route")
    s = start_shim(ctx)
    host = f"127.0.0.1:{s.shim.port}"
    reseal = Resealer(ctx.secret_key)
    trivial = [encode_request("GET", "/bench/trivial", host=host)]
    authorize = [encode_request("GET", s.flow.authorize_path, host=host, headers=[("Accept", "text/html")])]
    n = int(MAX_RATE * (ctx.duration + ctx.warmup))

    def callbacks() -> list[bytes]:
        out = []
        for i, (state, cookie, value) in enumerate(reseal.callback_states(s.flow.state, s.flow.flow_cookie, n)):
            q = urlencode({"code": f"upstream-code-{i}", "state": state, "iss": s.issuer})
            out.append(
                encode_request("GET", "/oauth/callback?" + q, host=host, headers=[("Cookie", f"{cookie}={value}")])
            )
        return out

    ok_trivial = expect(200, contains=b"ok")
    ok_page = expect(200, contains=b'name="ticket"')
    ok_relay = expect(302)
    cases = []
    for c in (1, 16):
        cases.append(Case(f"trivial Starlette route c={c}", s.shim, trivial, ok_trivial, c))
        cases.append(Case(f"GET /oauth/authorize c={c}", s.shim, authorize, ok_page, c))
        cases.append(Case(f"GET /oauth/callback c={c}", s.shim, [], ok_relay, c, unique=True, make_requests=callbacks))
    figs = ctx.compare(cases)
    rows = []
    for what in ("GET /oauth/authorize", "GET /oauth/callback"):
        for c in (1, 16):
            f, t = figs[f"{what} c={c}"], figs[f"trivial Starlette route c={c}"]
            rows.append(ratio_row(f"{what} req/s c={c}", "trivial Starlette route", f.rps, t.rps, ">= 0.5x"))
            rows.append(
                ratio_row(
                    f"{what} capacity by CPU/req c={c}",
                    "trivial Starlette route",
                    1 / f.cpu_ms_per_req,
                    1 / t.cpu_ms_per_req,
                    ">= 0.5x",
                    "/ms",
                    note=f"{f.cpu_ms_per_req:.3f} vs {t.cpu_ms_per_req:.3f} ms CPU/req",
                )
            )
    return rows

"""POST /oauth/token through the shim (code and refresh grants) vs the stub token endpoint.

The shim proxies to a stub IdP pinned to the load generator's core (a remote IdP's stand-in);
the baseline posts the same form bodies straight to a second stub instance on the server
core. Codes and refresh tokens are distinct per request (made with the shim's sealing API from
the values of one real flow, see bench/oauthflow.py), and each is sent at most once.

Without the exchange (informational): the code grant on a shim whose POST to the IdP is
answered in process, next to the shim with its exchange: the shim's own work per token request
and what the exchange adds to it, in server CPU.

What-if (informational, when aiohttp is installed): the same shim given an ``httpx.AsyncClient``
whose transport is aiohttp (``targets._AiohttpTransport``), code grant only - how much of the
cost is the HTTP client, measured rather than guessed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from bench.context import Case, Ctx, available
from bench.loadgen import expect
from bench.oauthflow import Resealer
from bench.report import Row, ratio_row, skipped_row
from bench.scenarios.oauth_setup import ShimSetup, code_form, form_post, refresh_form, start_shim

# Enough single-use values for the fastest plausible rate over one measurement.
MAX_RATE = 5000


def run(ctx: Ctx) -> list[Row]:
    if not available("mcp_oauth_shim"):
        return [
            skipped_row(
                "POST /oauth/token via the shim", "stub token endpoint", ">= 0.2x", "mcp_oauth_shim not importable"
            )
        ]
    ctx.log("[token] shim token endpoint vs stub")
    s = start_shim(ctx)
    base = ctx.spawn("stub_idp")
    reseal = Resealer(ctx.secret_key)
    n = int(MAX_RATE * (ctx.duration + ctx.warmup))
    ok = expect(200, contains=b'"access_token"')
    ok_refresh = expect(200, contains=b'"refresh_token"')

    def code_reqs() -> list[bytes]:
        return [form_post(s.shim.port, "/oauth/token", code_form(s, c)) for c in reseal.codes(s.flow.code, n)]

    def refresh_reqs() -> list[bytes]:
        return [
            form_post(s.shim.port, "/oauth/token", refresh_form(s, t))
            for t in reseal.refresh_tokens(s.flow.refresh_token, n)
        ]

    base_code = [form_post(base.port, "/token", code_form(s, c)) for c in reseal.codes(s.flow.code, 64)]
    base_refresh = [
        form_post(base.port, "/token", refresh_form(s, t)) for t in reseal.refresh_tokens(s.flow.refresh_token, 64)
    ]
    rows: list[Row] = []
    for grant, make, base_reqs, check in (
        ("code", code_reqs, base_code, ok),
        ("refresh", refresh_reqs, base_refresh, ok_refresh),
    ):
        cases = []
        for c in (1, 16):
            cases.append(Case(f"stub /token {grant} c={c}", base, base_reqs, check, c))
            cases.append(
                Case(f"shim /oauth/token {grant} c={c}", s.shim, [], check, c, unique=True, make_requests=make)
            )
        figs = ctx.compare(cases)
        for c in (1, 16):
            sh, st = figs[f"shim /oauth/token {grant} c={c}"], figs[f"stub /token {grant} c={c}"]
            rows.append(
                ratio_row(
                    f"POST /oauth/token {grant} req/s c={c}", "same form POST to stub /token", sh.rps, st.rps, ">= 0.2x"
                )
            )
            rows.append(
                ratio_row(
                    f"POST /oauth/token {grant} capacity by CPU/req c={c}",
                    "stub /token CPU/req",
                    1 / sh.cpu_ms_per_req,
                    1 / st.cpu_ms_per_req,
                    ">= 0.2x",
                    "/ms",
                    note=f"{sh.cpu_ms_per_req:.3f} vs {st.cpu_ms_per_req:.3f} ms CPU/req",
                )
            )
    rows.extend(_without_the_exchange(ctx, s, base, base_code, reseal, n, ok))
    if importlib.util.find_spec("aiohttp"):
        rows.extend(_what_if_aiohttp(ctx, base, reseal, n, ok))
    return rows


def _without_the_exchange(ctx: Ctx, s: ShimSetup, base, base_code, reseal: Resealer, n: int, ok) -> list[Row]:  # noqa: ANN001
    """Informational: the same code grant on a shim whose POST to the IdP is answered in
    process (``targets.answer_in_process``), next to the shim with its real exchange: what of
    the token endpoint's cost is the shim's own work and what is the exchange with the IdP."""
    w = start_shim(ctx, idp="in-process")

    def make(setup: ShimSetup) -> Callable[[], list[bytes]]:
        return lambda: [
            form_post(setup.shim.port, "/oauth/token", code_form(setup, c)) for c in reseal.codes(setup.flow.code, n)
        ]

    cases = []
    for c in (1, 16):
        cases.append(Case(f"stub /token code (exchange run) c={c}", base, base_code, ok, c))
        cases.append(Case(f"shim /oauth/token code (exchange run) c={c}", s.shim, [], ok, c, unique=True, make_requests=make(s)))
        cases.append(Case(f"shim, IdP answered in process, code c={c}", w.shim, [], ok, c, unique=True, make_requests=make(w)))
    figs = ctx.compare(cases)
    rows = []
    for c in (1, 16):
        st = figs[f"stub /token code (exchange run) c={c}"]
        full = figs[f"shim /oauth/token code (exchange run) c={c}"]
        own = figs[f"shim, IdP answered in process, code c={c}"]
        exchange_ms = full.cpu_ms_per_req - own.cpu_ms_per_req
        rows.append(
            ratio_row(
                f"what-if: /oauth/token code without the IdP exchange, capacity by CPU/req c={c}",
                "stub /token CPU/req",
                1 / own.cpu_ms_per_req,
                1 / st.cpu_ms_per_req,
                "",
                "/ms",
                note=f"{own.cpu_ms_per_req:.3f} vs {st.cpu_ms_per_req:.3f} ms CPU/req; the exchange adds "
                f"{exchange_ms:.3f} ms ({full.cpu_ms_per_req:.3f} ms with it)",
            )
        )
    return rows


def _what_if_aiohttp(ctx: Ctx, base, reseal: Resealer, n: int, ok) -> list[Row]:  # noqa: ANN001
    w = start_shim(ctx, transport="aiohttp")

    def code_reqs() -> list[bytes]:
        return [form_post(w.shim.port, "/oauth/token", code_form(w, c)) for c in reseal.codes(w.flow.code, n)]

    base_code = [form_post(base.port, "/token", code_form(w, c)) for c in reseal.codes(w.flow.code, 64)]
    cases = []
    for c in (1, 16):
        cases.append(Case(f"stub /token code (what-if run) c={c}", base, base_code, ok, c))
        cases.append(
            Case(
                f"shim[httpx over aiohttp] /oauth/token code c={c}",
                w.shim,
                [],
                ok,
                c,
                unique=True,
                make_requests=code_reqs,
            )
        )
    figs = ctx.compare(cases)
    rows = []
    for c in (1, 16):
        sh, st = (
            figs[f"shim[httpx over aiohttp] /oauth/token code c={c}"],
            figs[f"stub /token code (what-if run) c={c}"],
        )
        rows.append(
            ratio_row(
                f"what-if: /oauth/token code, httpx over aiohttp, c={c}",
                "same form POST to stub /token",
                sh.rps,
                st.rps,
                "",
                note=f"{sh.cpu_ms_per_req:.3f} vs {st.cpu_ms_per_req:.3f} ms CPU/req",
            )
        )
    return rows

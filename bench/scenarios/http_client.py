"""Which HTTP client should the shim use towards the IdP? Bare token proxies, one per library
(httpx tuned, httpx2, aiohttp) plus a minimal keep-alive socket pool (the floor), each a raw
ASGI app with one pooled client, forwarding the
form to the stub IdP on the load generator's core; baseline: the same POST straight to a stub
on the server core. Informational: it supports the choice, the shim's own figure is in
``token``.
"""

from __future__ import annotations

import importlib.util

from bench.context import Case, Ctx
from bench.loadgen import expect
from bench.report import Row, ratio_row
from bench.scenarios.oauth_setup import form_post, load_core

CLIENTS = ("httpx", "httpx2", "aiohttp", "rawpool")
FORM = (
    b"grant_type=authorization_code&code=upstream-code-1&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"
    b"&client_id=bench-client&client_secret=bench-upstream-secret&code_verifier=" + b"v" * 64
)


def run(ctx: Ctx) -> list[Row]:
    clients = [c for c in CLIENTS if c == "rawpool" or importlib.util.find_spec(c)]
    ctx.log(f"[http_client] token proxy on {', '.join(clients)} vs stub")
    up = ctx.spawn("stub_idp", _core=load_core())
    stub_url = f"http://127.0.0.1:{up.port}"
    base = ctx.spawn("stub_idp")
    proxies = {c: ctx.spawn("proxy", client=c, stub=stub_url) for c in clients}
    ok = expect(200, contains=b'"access_token"')
    cases = []
    for conc in (1, 16):
        cases.append(Case(f"stub /token c={conc}", base, [form_post(base.port, "/token", FORM)], ok, conc))
        for c, srv in proxies.items():
            cases.append(Case(f"proxy[{c}] c={conc}", srv, [form_post(srv.port, "/token", FORM)], ok, conc))
    figs = ctx.compare(cases)
    rows = []
    for c in clients:
        for conc in (1, 16):
            f, b = figs[f"proxy[{c}] c={conc}"], figs[f"stub /token c={conc}"]
            rows.append(
                ratio_row(
                    f"token proxy on {c} req/s c={conc}",
                    "stub /token direct",
                    f.rps,
                    b.rps,
                    "",
                    note=f"p99 {f.p99_ms:.2f} ms",
                )
            )
            rows.append(
                ratio_row(
                    f"token proxy on {c} capacity by CPU/req c={conc}",
                    "stub /token direct",
                    1 / f.cpu_ms_per_req,
                    1 / b.cpu_ms_per_req,
                    "",
                    "/ms",
                    note=f"{f.cpu_ms_per_req:.3f} vs {b.cpu_ms_per_req:.3f} ms CPU/req",
                )
            )
    return rows

"""Issued-token mode: an authenticated tools/call with the shim's own token vs verification
off, and ``POST /oauth/token`` in issued mode next to passthrough mode.

tools/call: the bridge's app with ``auth`` = a shim in issued-token mode, the token an RFC 9068
ES256 JWT minted here with the same secret key (keys derive from it), reused as a client does
between refreshes; baseline: the same call on the same app with ``auth=None``. Stateless
transport, as in ``auth_call``.

/oauth/token: the code grant (distinct codes, each once) and the refresh grant on two shims in
front of the same kind of stub IdP, one passing the IdP's tokens through, one issuing its own
(UserInfo call to the stub, ES256 signature, refresh token sealed with the IdP's tokens
encrypted). The issued-mode refresh token is reused (it is not single-use); the passthrough
ones are distinct, as in ``token``. Informational: the figure is the cost of issuing.
"""

from __future__ import annotations

from bench.context import Case, Ctx, available
from bench.loadgen import expect
from bench.oauthflow import Resealer
from bench.report import Row, ratio_row, skipped_row
from bench.scenarios.common import CALL_CHECK, call_request, open_session
from bench.scenarios.oauth_setup import code_form, form_post, load_core, refresh_form, start_shim

N = 10
MAX_RATE = 5000


def run(ctx: Ctx) -> list[Row]:
    if not (available("mcp_bridge") and available("mcp_oauth_shim")):
        return [skipped_row("issued-token tools/call", "verification off", ">= 0.95x", "bridge or shim not importable")]
    return [*_tools_call(ctx), *_token(ctx)]


def _mint(ctx: Ctx, public_url: str, stub: str) -> str:
    from bench.targets import make_upstream
    from mcp_oauth_shim import OAuthShim

    shim = OAuthShim(
        public_url=public_url,
        resource=public_url + "/mcp",
        upstream=make_upstream(stub, issue_tokens=True),
        secret_keys=[ctx.secret_key],
    )
    issued = shim.context.issued
    assert issued is not None
    return issued.tokens.access_token(client_id="bench-client", subject="bench-user", scopes="openid profile")


def _tools_call(ctx: Ctx) -> list[Row]:
    ctx.log("[issued] tools/call with the shim's own token vs verification off")
    up = ctx.spawn("stub_idp", _core=load_core())
    stub = f"http://127.0.0.1:{up.port}"
    authed = ctx.spawn("bridge", routes=N, stateless="1", auth="1", issue="1", stub=stub)
    plain = ctx.spawn("bridge", routes=N, stateless="1")
    token = _mint(ctx, f"http://127.0.0.1:{authed.port}", stub)
    bearer = [("Authorization", f"Bearer {token}")]
    sa, ta = open_session(authed, bearer)
    sp, tp = open_session(plain, bearer)
    call_a, call_p = [call_request(sa, ta)], [call_request(sp, tp)]
    cases = []
    for c in (1, 16):
        cases.append(Case(f"tools/call no auth c={c}", plain, call_p, CALL_CHECK, c))
        cases.append(Case(f"tools/call issued token c={c}", authed, call_a, CALL_CHECK, c))
    figs = ctx.compare(cases)
    rows = []
    for c in (1, 16):
        a, p = figs[f"tools/call issued token c={c}"], figs[f"tools/call no auth c={c}"]
        rows.append(ratio_row(f"issued-token tools/call req/s c={c}", "same call, verification off", a.rps, p.rps, ">= 0.95x"))
        rows.append(
            ratio_row(
                f"issued-token tools/call capacity by CPU/req c={c}",
                "verification off",
                1 / a.cpu_ms_per_req,
                1 / p.cpu_ms_per_req,
                ">= 0.95x",
                "/ms",
                note=f"{a.cpu_ms_per_req:.3f} vs {p.cpu_ms_per_req:.3f} ms CPU/req",
            )
        )
    return rows


def _token(ctx: Ctx) -> list[Row]:
    ctx.log("[issued] /oauth/token in issued mode vs passthrough")
    passthrough = start_shim(ctx)
    issued = start_shim(ctx, issue="1")
    reseal = Resealer(ctx.secret_key)
    n = int(MAX_RATE * (ctx.duration + ctx.warmup))
    ok = expect(200, contains=b'"access_token"')

    def codes(s: object) -> list[bytes]:
        return [form_post(s.shim.port, "/oauth/token", code_form(s, c)) for c in reseal.codes(s.flow.code, n)]  # type: ignore[attr-defined]

    def passthrough_refresh() -> list[bytes]:
        return [
            form_post(passthrough.shim.port, "/oauth/token", refresh_form(passthrough, t))
            for t in reseal.refresh_tokens(passthrough.flow.refresh_token, n)
        ]

    issued_refresh = [form_post(issued.shim.port, "/oauth/token", refresh_form(issued, issued.flow.refresh_token))]
    cases = []
    for c in (1, 16):
        cases.append(Case(f"passthrough code c={c}", passthrough.shim, [], ok, c, unique=True, make_requests=lambda: codes(passthrough)))
        cases.append(Case(f"issued code c={c}", issued.shim, [], ok, c, unique=True, make_requests=lambda: codes(issued)))
        cases.append(Case(f"passthrough refresh c={c}", passthrough.shim, [], ok, c, unique=True, make_requests=passthrough_refresh))
        cases.append(Case(f"issued refresh c={c}", issued.shim, issued_refresh, ok, c))
    figs = ctx.compare(cases)
    rows = []
    for grant in ("code", "refresh"):
        for c in (1, 16):
            i, p = figs[f"issued {grant} c={c}"], figs[f"passthrough {grant} c={c}"]
            rows.append(
                ratio_row(
                    f"POST /oauth/token {grant}, issued mode, req/s c={c}",
                    "same grant, passthrough mode",
                    i.rps,
                    p.rps,
                    "",
                    note=f"{i.cpu_ms_per_req:.3f} vs {p.cpu_ms_per_req:.3f} ms CPU/req",
                )
            )
    return rows

"""An authenticated tools/call (JWT verified by shim.verifier, JWKS cached) vs the same call
with verification off (the same app and bridge with ``auth=None``, same request bytes).

The stub IdP (on the load generator's core) serves the JWKS of an RSA key made here; tokens
are RS256 JWTs with ``iss`` = the stub, ``aud`` = the bridge's resource. Two cases:

- one token reused, as a client does between refreshes (a per-token cache in the verifier
  counts here) - the figure of the target;
- a new token on every call, so every call pays the signature check (informational: the
  worst case, e.g. many clients each calling once).

Stateless transport, so that calls with different tokens need no session of their own.
"""

from __future__ import annotations

import json
import time

from bench.context import RESULTS, Case, Ctx, available
from bench.report import Row, ratio_row, skipped_row
from bench.scenarios.common import CALL_CHECK, call_request, open_session
from bench.scenarios.oauth_setup import load_core

N = 10
# Enough fresh tokens for the fastest plausible rate over one measurement.
MAX_RATE = 3000


def make_key() -> tuple[object, str]:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "bench-key-1", "alg": "RS256", "use": "sig"})
    path = RESULTS / "generated" / "jwks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return key, str(path)


def make_token(key: object, issuer: str, audience: str, sub: str = "bench-user") -> str:
    from joserfc import jwt

    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "scope": "openid profile",
        "client_id": "bench-client",
    }
    return jwt.encode({"alg": "RS256", "kid": "bench-key-1", "typ": "at+jwt"}, claims, key)


def run(ctx: Ctx) -> list[Row]:
    if not (available("mcp_bridge") and available("mcp_oauth_shim")):
        return [skipped_row("authenticated tools/call", "verification off", ">= 0.9x", "bridge or shim not importable")]
    ctx.log("[auth_call] tools/call with JWT verification vs without")
    key, jwks = make_key()
    up = ctx.spawn("stub_idp", jwks=jwks, _core=load_core())
    issuer = f"http://127.0.0.1:{up.port}"
    authed = ctx.spawn("bridge", routes=N, stateless="1", auth="1", stub=issuer)
    plain = ctx.spawn("bridge", routes=N, stateless="1")
    audience = f"http://127.0.0.1:{authed.port}/mcp"
    token = make_token(key, issuer, audience)
    bearer = [("Authorization", f"Bearer {token}")]
    sa, ta = open_session(authed, bearer)
    sp, tp = open_session(plain, bearer)
    call_a, call_p = [call_request(sa, ta)], [call_request(sp, tp)]
    old_auth = f"Authorization: Bearer {token}".encode()
    n_fresh = int(MAX_RATE * (ctx.duration + ctx.warmup))

    def fresh() -> list[bytes]:
        # The same request with a new token each time (same length: only `sub` differs).
        return [
            call_a[0].replace(
                old_auth, f"Authorization: Bearer {make_token(key, issuer, audience, f'user-{i:06d}')}".encode()
            )
            for i in range(n_fresh)
        ]

    cases = []
    for c in (1, 16):
        cases.append(Case(f"tools/call no auth c={c}", plain, call_p, CALL_CHECK, c))
        cases.append(Case(f"tools/call JWT-verified c={c}", authed, call_a, CALL_CHECK, c))
        cases.append(
            Case(
                f"tools/call JWT-verified, new token per call c={c}",
                authed,
                [],
                CALL_CHECK,
                c,
                unique=True,
                make_requests=fresh,
            )
        )
    figs = ctx.compare(cases)
    rows = []
    for c in (1, 16):
        a, p = figs[f"tools/call JWT-verified c={c}"], figs[f"tools/call no auth c={c}"]
        f = figs[f"tools/call JWT-verified, new token per call c={c}"]
        rows.append(
            ratio_row(f"authenticated tools/call req/s c={c}", "same call, verification off", a.rps, p.rps, ">= 0.9x")
        )
        rows.append(
            ratio_row(
                f"authenticated tools/call capacity by CPU/req c={c}",
                "verification off",
                1 / a.cpu_ms_per_req,
                1 / p.cpu_ms_per_req,
                ">= 0.9x",
                "/ms",
                note=f"{a.cpu_ms_per_req:.3f} vs {p.cpu_ms_per_req:.3f} ms CPU/req",
            )
        )
        rows.append(
            ratio_row(
                f"authenticated tools/call, new token per call, capacity by CPU/req c={c}",
                "verification off",
                1 / f.cpu_ms_per_req,
                1 / p.cpu_ms_per_req,
                "",
                "/ms",
                note=f"{f.cpu_ms_per_req:.3f} vs {p.cpu_ms_per_req:.3f} ms CPU/req; {f.rps:.0f} vs {p.rps:.0f} req/s",
            )
        )
    return rows

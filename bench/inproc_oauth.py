"""In-process cost of the shim's OAuth endpoints, without any server or socket.

``python bench/inproc_oauth.py [--calls 5000] [--rounds 3] [--profile authorize|callback|token]``

The app of the ``browser`` and ``token`` scenarios (the shim's routes and the trivial baseline
route in one Starlette app) is called directly. One real flow (register, authorize, consent,
callback, token) provides the inputs; every callback and code is then distinct, made with the
shim's own sealing API (``bench.oauthflow.Resealer``). The IdP's token endpoint is not called:
``post_form`` answers the stub's fixed token response in-process, so ``token`` is the shim's
own work per request (form, checks, unseal, PKCE, seal, answer) without the exchange. CPU
time per request (``time.process_time``, medians of rounds) is steadier than anything
measured over sockets on a shared machine: the quick check for "did my change make the OAuth
endpoints cheaper?". uvicorn's share is absent, so the ratios are lower than end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import oauthflow, targets  # noqa: E402
from bench.inproc import request  # noqa: E402

PUBLIC = "http://127.0.0.1:8000"
STUB = "http://127.0.0.1:9"  # never contacted: discovery is off and post_form is replaced
FORM = [(b"content-type", b"application/x-www-form-urlencoded")]

Call = Callable[[int], Awaitable[tuple[int, bytes, dict]]]


def _location_query(headers: dict) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(headers[b"location"].decode()).query).items()}


def _cookie(headers: dict) -> str:
    return headers[b"set-cookie"].decode().split(";", 1)[0]


async def prepare(n: int, strict: Any = None) -> tuple[dict[str, Call], dict[str, Callable[[tuple[int, bytes, dict]], bool]]]:
    """The endpoints as calls ``i -> response`` (inputs distinct per ``i``), and their checks;
    ``strict``: the shim's ``StrictMode`` (default none)."""
    key = os.environ.setdefault("BENCH_SECRET_KEY", secrets.token_urlsafe(48))
    shim = targets.make_shim(PUBLIC, STUB, strict=strict)
    targets.answer_in_process(shim)
    app = targets.shim_app(shim)

    registration = json.dumps(
        {"redirect_uris": [oauthflow.REDIRECT_URI], "token_endpoint_auth_method": "none", "client_name": "bench"}
    ).encode()
    status, body, _ = await request(app, "POST", "/oauth/register", registration, [(b"content-type", b"application/json")])
    if status != 201:
        raise RuntimeError(f"register: {status} {body[:200]!r}")
    client_id = json.loads(body)["client_id"]
    verifier, challenge = oauthflow.pkce_pair()
    authorize = oauthflow.authorize_path(client_id, challenge, PUBLIC + "/mcp")
    status, page, headers = await request(app, "GET", authorize, b"", [(b"accept", b"text/html")])
    ticket = re.search(rb'name="ticket"\s+value="([^"]+)"', page)
    if status != 200 or ticket is None:
        raise RuntimeError(f"authorize: {status} {page[:200]!r}")
    consent = urlencode({"ticket": ticket.group(1).decode(), "decision": "approve"}).encode()
    status, body, headers = await request(
        app, "POST", "/oauth/consent", consent, [*FORM, (b"cookie", _cookie(headers).encode())]
    )
    if status != 303:
        raise RuntimeError(f"consent: {status} {body[:200]!r}")
    state = _location_query(headers)["state"]
    flow_cookie = tuple(_cookie(headers).split("=", 1))

    reseal = oauthflow.Resealer(key)
    callbacks = [
        (
            "/oauth/callback?" + urlencode({"code": f"upstream-code-{i}", "state": s, "iss": STUB}),
            f"{name}={value}".encode(),
        )
        for i, (s, name, value) in enumerate(reseal.callback_states(state, flow_cookie, n + 1))
    ]
    status, body, headers = await request(app, "GET", callbacks[0][0], b"", [(b"cookie", callbacks[0][1])])
    if status != 302:
        raise RuntimeError(f"callback: {status} {body[:200]!r}")
    code = _location_query(headers)["code"]
    forms = [
        urlencode(
            {
                "grant_type": "authorization_code",
                "code": c,
                "redirect_uri": oauthflow.REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": PUBLIC + "/mcp",
            }
        ).encode()
        for c in reseal.codes(code, n)
    ]
    calls: dict[str, Call] = {
        "trivial": lambda i: request(app, "GET", "/bench/trivial", b"", []),
        "authorize": lambda i: request(app, "GET", authorize, b"", [(b"accept", b"text/html")]),
        "callback": lambda i: request(app, "GET", callbacks[i + 1][0], b"", [(b"cookie", callbacks[i + 1][1])]),
        "token": lambda i: request(app, "POST", "/oauth/token", forms[i], FORM),
    }
    checks = {
        "trivial": lambda r: r[0] == 200 and b"ok" in r[1],
        "authorize": lambda r: r[0] == 200 and b'name="ticket"' in r[1],
        "callback": lambda r: r[0] == 302,
        "token": lambda r: r[0] == 200 and b'"access_token"' in r[1],
    }
    return calls, checks


async def main_async(a: argparse.Namespace) -> int:
    # Every round uses fresh inputs: codes and callbacks are single-use in spirit.
    warmup = min(200, a.calls)
    calls, checks = await prepare(warmup + a.calls * a.rounds)
    costs: dict[str, list[float]] = {name: [] for name in calls}
    offset = warmup
    for name, call in calls.items():
        for i in range(warmup):
            await call(i)
    for r in range(a.rounds):
        for name, call in calls.items():
            start = offset + r * a.calls
            t0 = time.process_time()
            for i in range(start, start + a.calls):
                response = await call(i)
            costs[name].append((time.process_time() - t0) / a.calls * 1e6)
            if not checks[name](response):
                raise RuntimeError(f"{name}: unexpected answer {response[0]} {response[1][:200]!r}")
    med = {name: sorted(v)[len(v) // 2] for name, v in costs.items()}
    print(f"in-process µs per request (medians of {a.rounds} rounds x {a.calls}):")
    for name, value in med.items():
        ratio = f"  (trivial route / this: {med['trivial'] / value:.2f}x)" if name in ("authorize", "callback") else ""
        print(f"  {name:10s} {value:6.1f}{ratio}")
    print("  token excludes the exchange with the IdP (answered in-process).")
    if a.profile:
        fresh, _ = await prepare(a.calls)
        prof = cProfile.Profile()
        prof.enable()
        for i in range(a.calls):
            await fresh[a.profile](i)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
        print(out.getvalue())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", choices=["trivial", "authorize", "callback", "token"])
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--metrics", action="store_true", help="with Prometheus metrics recording (mcp_oauth_shim.metrics)")
    a = p.parse_args(argv)
    if a.metrics:
        from mcp_oauth_shim.metrics import enable_metrics

        enable_metrics()
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())

"""Where a measured server's CPU goes.

``python bench/profile_server.py WHAT [options]``.

WHAT is one of: ``tools_call``, ``direct`` (the baseline POST), ``tools_list``, ``token``,
``authorize``, ``callback``, ``trivial`` (their baseline route in the same server), ``auth_call``,
``startup`` (exec to first tools/list). The server is set up exactly as in the benchmark
scenario and loaded with the same requests; meanwhile ``py-spy record --format raw`` samples
it (Python frames; idle excluded). The report gives, as a share of samples:

- self time per ``file:function`` (where the CPU is actually spent),
- inclusive time per ``file:function`` (which call paths are expensive),
- self time per package (uvicorn, starlette, fastapi, pydantic, mcp, anyio, httpx, ...).

The raw stacks are kept in ``bench/results/profiles/`` for flame graphs.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.context import RESULTS, Ctx  # noqa: E402
from bench.loadgen import Check, encode_request, expect, run_load_sync  # noqa: E402

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SITE = re.compile(r".*/site-packages/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")


def short_file(path: str) -> str:
    if "site-packages/" in path:
        return _SITE.sub("", path)
    if str(ROOT) in path:
        return path.replace(str(ROOT) + "/", "")
    if re.search(r"/lib/python3\.\d+/", path):
        return "stdlib/" + _STDLIB.sub("", path)
    return path


def package_of(file: str) -> str:
    if file.startswith("stdlib/"):
        parts = file.split("/")
        return "stdlib:" + (parts[1].removesuffix(".py") if len(parts) > 1 else "?")
    return file.split("/")[0].removesuffix(".py")


def parse_frame(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{short_file(m['file'])}:{m['func']}"


def analyse(raw: Path, top: int = 25) -> str:
    """A text report from py-spy's collapsed stacks."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    pkg_c: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [parse_frame(f) for f in stack.split(";") if f]
        # py-spy prefixes thread/process frames in some modes; keep Python frames only.
        frames = [f for f in frames if ":" in f]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        pkg_c[package_of(frames[-1])] += n
        for f in set(frames):
            incl_c[f] += n
    if total == 0:
        return "no samples"
    out = [f"samples: {total}", "", "self time by package:"]
    out += [f"  {100 * c / total:5.1f}%  {k}" for k, c in pkg_c.most_common(15)]
    out += ["", f"self time, top {top} functions:"]
    out += [f"  {100 * c / total:5.1f}%  {k}" for k, c in self_c.most_common(top)]
    out += [
        "",
        f"inclusive time, top {top} functions below the event loop (a lower bound for coroutine frames:"
        " py-spy may see a resumed coroutine chain only from an inner frame):",
    ]
    loop_frames = (
        "uvloop",
        "asyncio/base_events",
        "asyncio/events",
        "asyncio/runners",
        "uvicorn/server",
        "uvicorn/main",
        "bench/serve",
        "<frozen runpy>",
        "runpy",
    )
    shown = 0
    for k, c in incl_c.most_common():
        if any(s in k for s in loop_frames) or 100 * c / total > 99.5:
            continue
        out.append(f"  {100 * c / total:5.1f}%  {k}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(out)


Setup = tuple[procs.Server, Sequence[bytes], Check, bool, Callable[[], Sequence[bytes]] | None]


def setup(what: str, ctx: Ctx, a: argparse.Namespace) -> Setup:
    from bench.scenarios.common import CALL_CHECK, DIRECT_CHECK, call_request, direct_request, open_session

    if what in ("tools_call", "direct"):
        s = ctx.spawn("bridge", routes=a.routes, stateless="1" if a.mode == "stateless" else "0")
        if what == "direct":
            return s, [direct_request(s)], DIRECT_CHECK, False, None
        sess, tool = open_session(s)
        return s, [call_request(sess, tool)], CALL_CHECK, False, None
    if what == "tools_list":
        s = ctx.spawn("bridge", routes=a.routes, stateless="1" if a.mode == "stateless" else "0")
        sess, _ = open_session(s)
        return s, [sess.encode("tools/list", {})], expect(200, contains=b'"create_item_r0"'), False, None
    if what == "auth_call":
        from bench.scenarios.auth_call import make_key, make_token
        from bench.scenarios.oauth_setup import load_core

        key, jwks = make_key()
        up = ctx.spawn("stub_idp", jwks=jwks, _core=load_core())
        issuer = f"http://127.0.0.1:{up.port}"
        s = ctx.spawn("bridge", routes=a.routes, stateless="1" if a.mode == "stateless" else "0", auth="1", stub=issuer)
        token = make_token(key, issuer, f"http://127.0.0.1:{s.port}/mcp")
        sess, tool = open_session(s, [("Authorization", f"Bearer {token}")])
        return s, [call_request(sess, tool)], CALL_CHECK, False, None
    if what in ("token", "authorize", "callback", "trivial"):
        from urllib.parse import urlencode

        from bench.oauthflow import Resealer
        from bench.scenarios.oauth_setup import code_form, form_post, refresh_form, start_shim

        st = start_shim(ctx, **({"transport": a.transport} if a.transport else {}))
        reseal = Resealer(ctx.secret_key)
        n = 5000 * int(a.seconds + 2)
        port = st.shim.port
        if what == "trivial":  # the browser scenario's baseline, in the same server
            req = [encode_request("GET", "/bench/trivial", host=f"127.0.0.1:{port}")]
            return st.shim, req, expect(200, contains=b"ok"), False, None
        if what == "authorize":
            req = [encode_request("GET", st.flow.authorize_path, host=f"127.0.0.1:{port}")]
            return st.shim, req, expect(200, contains=b'name="ticket"'), False, None
        if what == "callback":
            reqs = []
            for i, (state, cookie, value) in enumerate(reseal.callback_states(st.flow.state, st.flow.flow_cookie, n)):
                q = urlencode({"code": f"c{i}", "state": state, "iss": st.issuer})
                reqs.append(
                    encode_request(
                        "GET",
                        "/oauth/callback?" + q,
                        host=f"127.0.0.1:{port}",
                        headers=[("Cookie", f"{cookie}={value}")],
                    )
                )
            return st.shim, reqs, expect(302), True, None
        if a.grant == "refresh":
            reqs = [
                form_post(port, "/oauth/token", refresh_form(st, t))
                for t in reseal.refresh_tokens(st.flow.refresh_token, n)
            ]
        else:
            reqs = [form_post(port, "/oauth/token", code_form(st, c)) for c in reseal.codes(st.flow.code, n)]
        return st.shim, reqs, expect(200, contains=b'"access_token"'), True, None
    raise SystemExit(f"unknown target {what!r}")


def profile_startup(a: argparse.Namespace, pyspy: str) -> int:
    """py-spy runs the server itself (from exec to the first tools/list answered)."""
    import os
    import signal

    from bench.scenarios.startup import _first_tools_list, _until

    port = procs.free_port()
    out_dir = RESULTS / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"startup-N{a.routes}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.txt"
    core = procs.server_core()
    cmd = [
        pyspy,
        "record",
        "--rate",
        str(a.rate),
        "--format",
        "raw",
        "--output",
        str(raw),
        "--",
        sys.executable,
        "-m",
        "bench.serve",
        "bridge",
        "--port",
        str(port),
        "--opt",
        f"routes={a.routes}",
    ]
    if core is not None:
        cmd += ["--core", str(core)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    spy = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fake = procs.Server("bridge", port, spy, RESULTS / "profiles" / "startup.log", t0)
    try:
        took = _until(fake, lambda: _first_tools_list(fake))
    finally:
        children = Path(f"/proc/{spy.pid}/task/{spy.pid}/children").read_text().split()
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        finally:
            for c in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(c), signal.SIGINT)
    print(f"startup (bridge, N={a.routes}): first tools/list after {took:.2f} s under py-spy; profile {raw}")
    if not raw.exists():
        print(spy.stderr.read().decode(errors="replace")[-2000:] if spy.stderr else "", file=sys.stderr)
        return 1
    print(analyse(raw, a.top))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "what",
        choices=["tools_call", "direct", "tools_list", "token", "authorize", "callback", "trivial", "auth_call", "startup"],
    )
    p.add_argument("--routes", type=int, default=10)
    p.add_argument("--mode", choices=["stateful", "stateless"], default="stateful")
    p.add_argument("--grant", choices=["code", "refresh"], default="code")
    p.add_argument("--transport", choices=["", "aiohttp"], default="", help="shim targets: httpx over aiohttp (what-if)")
    p.add_argument("--concurrency", "-c", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    procs.pin_self_to_load_core()
    if a.what == "startup":
        return profile_startup(a, pyspy)
    ctx = Ctx()
    try:
        server, reqs, check, unique, _ = setup(a.what, ctx, a)
        # Warm up (first calls build caches) before sampling.
        run_load_sync(
            "127.0.0.1",
            server.port,
            reqs[:2000] if unique else reqs,
            check,
            concurrency=a.concurrency,
            duration=0.5,
            warmup=0.0,
            unique=unique,
        )
        rest = reqs[2000:] if unique else reqs
        out_dir = RESULTS / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        raw = out_dir / f"{a.what}-{a.mode}-N{a.routes}-c{a.concurrency}-{stamp}.txt"
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(a.seconds)),
                "--rate",
                str(a.rate),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.3)
        result: list = []
        t = threading.Thread(
            target=lambda: result.append(
                run_load_sync(
                    "127.0.0.1",
                    server.port,
                    rest,
                    check,
                    concurrency=a.concurrency,
                    duration=a.seconds + 0.5,
                    warmup=0.0,
                    unique=unique,
                )
            )
        )
        t.start()
        t.join()
        _, err = spy.communicate(timeout=60)
        res = result[0]
        print(
            f"{a.what} ({a.mode}, N={a.routes}, c={a.concurrency}): {res.rps:.0f} req/s, "
            f"{res.errors} errors of {res.requests}; profile {raw}"
        )
        if spy.returncode != 0 or not raw.exists():
            print(err.decode(errors="replace")[-2000:], file=sys.stderr)
            return 1
        print(analyse(raw, a.top))
        return 0
    finally:
        ctx.stop_all()


if __name__ == "__main__":
    sys.exit(main())

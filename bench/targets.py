"""The ASGI applications the benchmarks serve, built by name from string options.

Baselines are deliberately minimal (raw ASGI callables, no framework) so that a ratio to them
measures what the bridge or shim adds. ``build(name, opts)`` is called by ``bench.serve``
inside the pinned server process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

ASGIApp = Callable[..., Any]

TOKEN_RESPONSE = json.dumps(
    {
        "access_token": "stub-access-token-" + "a" * 40,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "stub-refresh-token-" + "r" * 40,
        "scope": "openid profile offline_access",
    },
    separators=(",", ":"),
).encode()


async def _read_body(receive: Callable[[], Any]) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Callable[[], Any], send: Callable[..., Any]) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _raw(status: int, body: bytes, content_type: bytes) -> ASGIApp:
    """A raw ASGI app answering every HTTP request with the same pre-encoded response."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": status, "headers": headers}
    done = {"type": "http.response.body", "body": body}

    async def app(scope: dict, receive: Callable[[], Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope.get("method") == "POST":
            await _read_body(receive)
        await send(start)
        await send(done)

    return app


def trivial(opts: Mapping[str, str]) -> ASGIApp:
    """The floor: 2 bytes, no framework. Shows what the load generator can drive."""
    return _raw(200, b"ok", b"text/plain")


def preencoded(opts: Mapping[str, str]) -> ASGIApp:
    """The exact bytes of another answer (file ``body``), served as-is with its content type."""
    with open(opts["body"], "rb") as f:
        body = f.read()
    return _raw(200, body, opts.get("content_type", "application/json").encode())


def plain(opts: Mapping[str, str]) -> ASGIApp:
    """The generated FastAPI app alone (GET /openapi.json runs ``app.openapi()``)."""
    from bench import genapp

    return genapp.load(int(opts.get("routes", "10"))).app


def stub_idp(opts: Mapping[str, str]) -> ASGIApp:
    """A minimal upstream IdP: token endpoint with a fixed answer, JWKS, discovery document."""
    issuer = opts.get("issuer") or f"http://127.0.0.1:{opts['_port']}"
    jwks = b'{"keys":[]}'
    if opts.get("jwks"):
        with open(opts["jwks"], "rb") as f:
            jwks = f.read()
    meta = json.dumps(
        {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "userinfo_endpoint": issuer + "/userinfo",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }
    ).encode()
    token = _raw(200, TOKEN_RESPONSE, b"application/json")
    routes = {
        "/token": token,
        "/jwks": _raw(200, jwks, b"application/json"),
        # Issued-token mode learns the user here (identity="userinfo").
        "/userinfo": _raw(200, b'{"sub":"bench-user","name":"Bench User"}', b"application/json"),
        "/.well-known/openid-configuration": _raw(200, meta, b"application/json"),
        "/.well-known/oauth-authorization-server": _raw(200, meta, b"application/json"),
    }
    missing = _raw(404, b"{}", b"application/json")

    async def app(scope: dict, receive: Callable[[], Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await routes.get(scope["path"], missing)(scope, receive, send)

    return app


def make_upstream(stub: str, issue_tokens: bool = False) -> Any:
    """The shim's upstream pointing at the stub IdP, every endpoint explicit (no discovery);
    ``issue_tokens``: issued-token mode, the user from the stub's UserInfo."""
    from mcp_oauth_shim import Upstream

    issued: dict[str, Any] = {"issue_tokens": True, "identity": "userinfo", "userinfo_endpoint": stub + "/userinfo"} if issue_tokens else {}
    return Upstream.oidc(
        **issued,
        issuer=stub,
        client_id="bench-client",
        client_secret="bench-upstream-secret",
        authorization_endpoint=stub + "/authorize",
        token_endpoint=stub + "/token",
        jwks_uri=stub + "/jwks",
        audience=None,
        audience_param="resource",
        default_scopes=("openid", "profile"),
        extra_scopes=("offline_access",),
    )


def make_shim(public_url: str, stub: str, transport: str = "", strict: Any = None, issue: str = "") -> Any:
    """The shim as configured by default; ``transport="aiohttp"`` is a what-if: the shim's
    ``http_client`` stays an ``httpx.AsyncClient`` but sends through aiohttp underneath.
    ``strict``: a ``StrictMode`` (strict mode's cost, ``bench/inproc_strict_endpoints.py``).
    ``issue="1"``: issued-token mode."""
    from mcp_oauth_shim import OAuthShim

    http_client = None
    if transport == "aiohttp":
        import httpx

        http_client = httpx.AsyncClient(transport=_AiohttpTransport(), trust_env=False)
    return OAuthShim(
        public_url=public_url,
        resource=public_url + "/mcp",
        upstream=make_upstream(stub, issue_tokens=issue == "1"),
        secret_keys=[os.environ["BENCH_SECRET_KEY"]],
        http_client=http_client,
        strict=strict,
    )


def _aiohttp_transport_class() -> type:
    import aiohttp
    import httpx

    class AiohttpTransport(httpx.AsyncBaseTransport):
        """httpx's client API over an aiohttp connection pool (cookies off, pool of 64)."""

        def __init__(self) -> None:
            self._session: aiohttp.ClientSession | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=64),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                    trust_env=False,
                )
            body = await request.aread()
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw if k.lower() != b"host"
            ]
            async with self._session.request(
                request.method, str(request.url), data=body, headers=headers, allow_redirects=False
            ) as r:
                content = await r.read()
                return httpx.Response(r.status, headers=list(r.raw_headers), content=content, request=request)

        async def aclose(self) -> None:
            if self._session is not None:
                await self._session.close()

    return AiohttpTransport


def _AiohttpTransport() -> Any:  # noqa: N802 - a class made on demand (aiohttp is optional)
    return _aiohttp_transport_class()()


def answer_in_process(s: Any) -> None:
    """Make the shim ``s`` answer its token POSTs to the IdP in process with the stub's fixed
    token answer (:data:`TOKEN_RESPONSE`): what the shim's own work costs per token request,
    without the exchange with the IdP. Measurement only; discovery and keys are untouched."""
    answer = json.loads(TOKEN_RESPONSE)

    async def post_form(url: str, form: Any) -> tuple[int, dict[str, Any]]:
        return 200, dict(answer)

    s.upstream_client.post_form = post_form


def shim(opts: Mapping[str, str]) -> ASGIApp:
    """The shim's routes plus a trivial Starlette route (the baseline) in one Starlette app;
    ``idp=in-process``: token POSTs to the IdP answered in process (:func:`answer_in_process`)."""
    public = f"http://127.0.0.1:{opts['_port']}"
    s = make_shim(public, opts["stub"], opts.get("transport", ""), issue=opts.get("issue", ""))
    if opts.get("idp") == "in-process":
        answer_in_process(s)
    return shim_app(s)


def shim_app(s: Any) -> ASGIApp:
    """``s.routes`` and ``GET /bench/trivial`` (a small HTML page) in one Starlette app."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    page = "<!doctype html><title>ok</title><p>ok</p>"

    async def trivial_page(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[*s.routes, Route("/bench/trivial", trivial_page)])


def bridge(opts: Mapping[str, str]) -> ASGIApp:
    """The generated app with the bridge mounted at /mcp (``stateless``, ``auth`` = 0/1)."""
    from bench import genapp
    from mcp_bridge import MCPBridge

    app = genapp.load(int(opts.get("routes", "10"))).app
    auth = None
    if opts.get("auth") == "1":
        auth = make_shim(f"http://127.0.0.1:{opts['_port']}", opts["stub"], issue=opts.get("issue", ""))
    b = MCPBridge(app, auth=auth)
    b.mount_http("/mcp", stateless=opts.get("stateless") == "1")
    return app


# --- minimal token proxies, one per HTTP client library, for the client choice -----------------


def _proxy_app(forward: Callable[[bytes], Any], startup: Callable[[], Any], shutdown: Callable[[], Any]) -> ASGIApp:
    ctype = b"application/json"

    async def app(scope: dict, receive: Callable[[], Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await startup()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await _read_body(receive)
        status, data = await forward(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    return app


def proxy(opts: Mapping[str, str]) -> ASGIApp:
    """A bare token proxy: POST body forwarded to the stub's /token with one pooled client.

    ``client`` = ``httpx`` (tuned: pool sized, trust_env off, HTTP/1.1), ``httpx2``, ``aiohttp``,
    or ``rawpool`` (a minimal keep-alive connection pool: the floor any library can reach).
    """
    url = opts["stub"] + "/token"
    which = opts["client"]
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    state: dict[str, Any] = {}

    if which in ("httpx", "httpx2"):
        lib: Any = __import__(which)

        async def startup() -> None:
            state["c"] = lib.AsyncClient(
                limits=lib.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30),
                timeout=lib.Timeout(10.0),
                trust_env=False,
            )

        async def shutdown() -> None:
            await state["c"].aclose()

        async def forward(body: bytes) -> tuple[int, bytes]:
            r = await state["c"].post(url, content=body, headers=headers)
            return r.status_code, r.content

    elif which == "aiohttp":
        import aiohttp

        async def startup() -> None:
            state["c"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=10),
                trust_env=False,
            )

        async def shutdown() -> None:
            await state["c"].close()

        async def forward(body: bytes) -> tuple[int, bytes]:
            async with state["c"].post(url, data=body, headers=headers) as r:
                return r.status, await r.read()

    elif which == "rawpool":
        # The floor for any client library: bench.loadgen's keep-alive protocol as a pool.
        from urllib.parse import urlsplit

        from bench.loadgen import _connect, encode_request

        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        idle: list[Any] = []

        async def startup() -> None:
            return None

        async def shutdown() -> None:
            for conn in idle:
                conn.transport.close()

        async def forward(body: bytes) -> tuple[int, bytes]:
            conn = idle.pop() if idle else await _connect(host, port)
            data = encode_request("POST", parts.path, host=parts.netloc, headers=list(headers.items()), body=body)
            status, answer = await conn.send(data)
            if not conn.closed:
                idle.append(conn)
            return status, answer

    else:
        raise ValueError(f"unknown client {which!r}")
    return _proxy_app(forward, startup, shutdown)


FACTORIES: dict[str, Callable[[Mapping[str, str]], ASGIApp]] = {
    "trivial": trivial,
    "preencoded": preencoded,
    "plain": plain,
    "stub_idp": stub_idp,
    "shim": shim,
    "bridge": bridge,
    "proxy": proxy,
}


def build(name: str, opts: Mapping[str, str]) -> ASGIApp:
    return FACTORIES[name](opts)

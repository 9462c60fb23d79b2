"""Memory stays flat: N authorization requests and N tool calls retain nothing per request.

``python bench/memory.py [--requests 100000] [--warmup 2000] [--no-metrics]``

Everything runs in one process, through the ASGI callables directly (no sockets): the shim's
app with the development IdP behind an in-process transport, and a FastAPI app whose route is
served as an MCP tool by the bridge behind the shim's login (``MCPBridge(auth=shim)``,
stateless Streamable HTTP), each wrapped in the request-id middleware, with Prometheus metrics
on (unless ``--no-metrics``) so that their label caches are part of what is measured.

Each phase warms up first (every bounded cache reaches its steady state: the verifier's token
cache, the discovery document, the metrics' label children, interned strings), then starts
``tracemalloc`` and makes N requests: what is still allocated at the end, after a garbage
collection, is what the requests left behind. Each authorization request has a fresh PKCE
challenge and state, as real ones do. ``tests/ops/test_memory.py`` runs the same phases
with 10,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import json
import secrets
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.inproc import Lifespan, mcp_headers, request  # noqa: E402

PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
IDP = "http://127.0.0.1:9000"
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"


@dataclass(frozen=True)
class Growth:
    """What N requests left allocated (bytes, tracemalloc) and what they cost (CPU seconds)."""

    name: str
    requests: int
    retained_bytes: int
    peak_bytes: int
    seconds: float

    @property
    def per_request(self) -> float:
        return self.retained_bytes / self.requests

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.requests} requests retained {self.retained_bytes / 1024:.1f} KiB "
            f"({self.per_request:.2f} bytes/request; peak {self.peak_bytes / 1024:.0f} KiB above the start) "
            f"in {self.seconds:.1f} s"
        )


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def measure(name: str, one: Callable[[int], Awaitable[None]], n: int, warmup: int) -> Growth:
    for i in range(warmup):
        await one(i)
    gc.collect()
    tracemalloc.start()
    try:
        started = time.process_time()
        for i in range(n):
            await one(warmup + i)
        seconds = time.process_time() - started
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Growth(name, n, retained, peak, seconds)


def build(metrics: bool):
    """The shim (dev IdP in-process), its app and a bridged FastAPI app behind it."""
    import httpx
    from fastapi import FastAPI

    from mcp_bridge import MCPBridge
    from mcp_oauth_shim import OAuthShim, Upstream
    from mcp_oauth_shim.dev_idp import DevIdP
    from mcp_oauth_shim.request_id import RequestIdMiddleware

    idp = DevIdP(issuer=IDP, redirect_uris=[PUBLIC_URL + "/oauth/callback"], auto_approve=True, audiences=[RESOURCE])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url=IDP)
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=Upstream.oidc(issuer=IDP, client_id=idp.client_id, client_secret=idp.client_secret, audience=RESOURCE),
        secret_keys=[secrets.token_urlsafe(48)],
        http_client=http,
        metrics=metrics,
    )
    api = FastAPI()

    @api.get("/items/{item_id}", operation_id="get_item")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    MCPBridge(api, auth=shim).mount_http("/mcp", stateless=True)
    return idp, http, shim, RequestIdMiddleware(shim.app), RequestIdMiddleware(api)


async def access_token(idp, http) -> str:
    """A real access token for the resource from the dev IdP (authorization code + PKCE)."""
    verifier = secrets.token_urlsafe(48)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": idp.client_id,
            "redirect_uri": PUBLIC_URL + "/oauth/callback",
            "scope": "openid",
            "code_challenge": challenge_of(verifier),
            "code_challenge_method": "S256",
            "state": "s",
            "resource": RESOURCE,
        }
    )
    answer = await http.get("/authorize?" + query)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    tokens = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PUBLIC_URL + "/oauth/callback",
            "code_verifier": verifier,
            "resource": RESOURCE,
        },
        auth=(idp.client_id, idp.client_secret),
    )
    return tokens.json()["access_token"]


async def run(n: int, warmup: int, metrics: bool = True) -> tuple[Growth, Growth]:
    idp, http, shim, shim_app, api_app = build(metrics)
    async with Lifespan(shim_app), Lifespan(api_app):
        status, body, _ = await request(
            shim_app,
            "POST",
            "/oauth/register",
            json.dumps({"redirect_uris": [CLIENT_REDIRECT], "client_name": "memory"}).encode(),
            [(b"content-type", b"application/json")],
        )
        assert status == 201, body
        client_id = json.loads(body)["client_id"]

        async def authorize(i: int) -> None:
            query = urlencode(
                {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": CLIENT_REDIRECT,
                    "code_challenge": challenge_of(f"verifier-{i:08d}-" + "v" * 32),
                    "code_challenge_method": "S256",
                    "state": f"state-{i}",
                    "resource": RESOURCE,
                }
            )
            status, body, _ = await request(shim_app, "GET", "/oauth/authorize?" + query, b"", [])
            if status != 200:  # the consent page
                raise RuntimeError(f"authorize answered {status}: {body[:200]!r}")

        token = await access_token(idp, http)
        headers = [*mcp_headers(None), (b"authorization", b"Bearer " + token.encode())]

        async def tool_call(i: int) -> None:
            call = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "get_item", "arguments": {"item_id": i}}}
            status, body, _ = await request(api_app, "POST", "/mcp", json.dumps(call).encode(), headers)
            if status != 200 or b'"isError":true' in body or str(i).encode() not in body:
                raise RuntimeError(f"tools/call answered {status}: {body[:300]!r}")

        authorize_growth = await measure("authorize", authorize, n, warmup)
        tool_growth = await measure("tools/call", tool_call, n, warmup)
    await http.aclose()
    return authorize_growth, tool_growth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--no-metrics", action="store_true")
    a = parser.parse_args()
    for growth in asyncio.run(run(a.requests, a.warmup, metrics=not a.no_metrics)):
        print(growth)
    return 0


if __name__ == "__main__":
    sys.exit(main())

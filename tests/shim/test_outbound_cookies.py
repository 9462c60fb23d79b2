"""The shim's outbound clients keep no cookies (mcp_oauth_shim/outbound.py).

One shared client calls the IdP, client metadata hosts and the upstream MCP server for every
user: a cookie one answer sets must never ride along on another user's request, and a cookie
httpx cannot encode must not turn an IdP answer into a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_oauth_shim.mcp_proxy import MCPReverseProxy
from mcp_oauth_shim.outbound import cookieless_jar
from mcp_oauth_shim.upstream import default_http_client
from tests.peers.servers import serve_asgi


def _cookie_setting_server(seen: list[str | None]) -> Starlette:
    """An upstream that sets a session cookie on every answer and records the Cookie it got."""

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        response = JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})
        response.set_cookie("session", f"user-{len(seen)}")
        return response

    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])


def test_the_mcp_proxy_never_sends_one_users_upstream_cookie_with_another_users_request() -> None:
    seen: list[str | None] = []
    with serve_asgi(_cookie_setting_server(seen)) as upstream:
        proxy = MCPReverseProxy(upstream.url + "/mcp", mount_path="/mcp")

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await proxy.aclose()

        app = Starlette(routes=[Route("/mcp", proxy, methods=["POST"])], lifespan=lifespan)
        with TestClient(app) as browser:
            first = browser.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            browser.cookies.clear()  # the next request is another user's
            browser.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert "session=user-1" in first.headers["set-cookie"]  # the user's own answer keeps it
    assert seen == [None, None]


def test_the_default_idp_client_stores_no_cookie() -> None:
    def idp(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"Set-Cookie": "tracking=1; Path=/"})

    async def two_calls() -> list[str | None]:
        client = default_http_client(5.0)
        client._transport = httpx.MockTransport(idp)  # fault injection: no socket needed
        sent = []
        for _ in range(2):
            response = await client.get("http://127.0.0.1:9/.well-known/openid-configuration")
            sent.append(response.request.headers.get("cookie"))
        await client.aclose()
        return sent

    assert asyncio.run(two_calls()) == [None, None]


@pytest.mark.parametrize("raw", [b"a=\x80", b"a=\xff\xfe", b"\xe9t\xe9=1"])
def test_a_redirect_with_a_cookie_httpx_cannot_encode_raises_nothing_in_a_cookieless_client(raw: bytes) -> None:
    def host(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers=[(b"location", b"/elsewhere"), (b"set-cookie", raw)])

    async def fetch() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(host), cookies=cookieless_jar()) as client:
            return (await client.get("http://127.0.0.1:9/doc")).status_code

    assert asyncio.run(fetch()) == 302

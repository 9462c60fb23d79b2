"""`serve --mcp-upstream`: the reverse proxy binds each MCP session to the user who opened it.

The MCP server behind the proxy never sees who calls (the proxy drops ``Authorization`` unless
told otherwise), so it cannot bind its ``Mcp-Session-Id`` to a user the way the SDK and the
bridge do (MCP 2025-11-25 "Security Best Practices", Session Hijacking: a session id must be
bound to the user it was issued to). The proxy does it: a session id reaches the server only
with the credential of the user it was handed to; any other caller gets the 404 an unknown
session gets (MCP 2025-11-25 "Transports", Session Management), and the server never sees the
request.

Real peers: a stateful MCP server (the bridge over a FastAPI app) behind the real proxy behind
``shim.protect``, both on loopback uvicorn, tokens from the test IdP's key, and the official
``mcp`` SDK client for the session owner.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette
from starlette.routing import Route

from mcp_bridge import MCPBridge
from mcp_oauth_shim.mcp_proxy import MCPReverseProxy
from tests.bridge.sample_app import build_app
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import RequestLog, bind_loopback, serve_asgi

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class Front:
    mcp: str
    issuer: TokenIssuer
    upstream_log: RequestLog

    def headers(self, subject: str, session: str | None = None) -> dict[str, str]:
        token = self.issuer.token(audience=self.mcp, subject=subject)
        extra = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"} if session else {}
        return {**ACCEPT, "authorization": f"Bearer {token}", **extra}


@contextlib.contextmanager
def proxied() -> Iterator[Front]:
    server, _ = build_app()
    MCPBridge(server).mount_http("/mcp", stateless=False)
    with serve_asgi(server) as upstream:
        sock = bind_loopback()
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        issuer = TokenIssuer()
        shim = issuer.shim(url)
        proxy = MCPReverseProxy(upstream.url + "/mcp", mount_path="/mcp", sealer=shim.context.sealer)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with shim.lifespan(app):
                yield
            await proxy.aclose()

        guarded = shim.protect(proxy)
        front = Starlette(routes=[*shim.routes, Route("/mcp", guarded, methods=["GET", "POST", "DELETE"])], lifespan=lifespan)
        with serve_asgi(front, sock) as running:
            yield Front(running.url + "/mcp", issuer, upstream.requests)


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    with proxied() as running:
        yield running


def _logged_at_least(front: Front, count: int) -> int:
    """The server's request count once it has logged ``count`` requests: it logs a request
    when its handler returns, which may be just after the client has the whole answer."""
    give_up = time.monotonic() + 5
    while len(front.upstream_log.lines) < count and time.monotonic() < give_up:
        time.sleep(0.01)
    return len(front.upstream_log.lines)


def _open_session(front: Front, subject: str) -> str:
    response = httpx.post(front.mcp, json=INIT, headers=front.headers(subject), timeout=10)
    assert response.status_code == 200
    return response.headers["mcp-session-id"]


@pytest.mark.parametrize(
    ("method", "body"),
    [("POST", LIST), ("GET", None), ("DELETE", None)],
    ids=["post", "get-stream", "delete"],
)
def test_another_users_session_id_is_404_and_never_reaches_the_server(front: Front, method: str, body: object) -> None:
    opened_after = len(front.upstream_log.lines) + 1
    session = _open_session(front, "alice")
    seen_before = _logged_at_least(front, opened_after)
    headers = front.headers("mallory", session)
    if method == "GET":
        headers["accept"] = "text/event-stream"
    response = httpx.request(method, front.mcp, json=body, headers=headers, timeout=10)
    assert response.status_code == 404
    assert len(front.upstream_log.lines) == seen_before
    # The owner's session is untouched (mallory's DELETE did not end it).
    assert httpx.post(front.mcp, json=LIST, headers=front.headers("alice", session), timeout=10).status_code == 200


@pytest.mark.parametrize("forged", ["f" * 32, "a.b.c", "~" * 300], ids=["unknown", "dotted", "long"])
def test_a_session_id_the_proxy_did_not_hand_out_is_404(front: Front, forged: str) -> None:
    response = httpx.post(front.mcp, json=LIST, headers=front.headers("alice", forged), timeout=10)
    assert response.status_code == 404


@pytest.mark.anyio
async def test_the_session_owner_lists_and_calls_tools_through_the_proxy_with_the_sdk_client(front: Front) -> None:
    token = front.issuer.token(audience=front.mcp, subject="alice")
    http = create_mcp_http_client(headers={"authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(front.mcp, http_client=http), mode="legacy") as client:  # type: ignore[arg-type]
        tools = await client.list_tools()
        result = await client.call_tool("list_trees", {})
    assert tools.tools and result.is_error is False

"""`serve --mcp-upstream` with a legacy HTTP+SSE MCP server (MCP 2024-11-05).

The legacy transport opens a stream with ``GET``; its first event, ``endpoint``, names the URL
the client posts its messages to, the session id in its query (``session_id`` for the Python
SDK, ``sessionId`` for the TypeScript one). Through the proxy that URL must name the public
path (the server only knows its own), and the session must be bound to the user who opened
the stream exactly as ``Mcp-Session-Id`` is: a query string ends up in the access logs of
every intermediary, and a leaked id must not let another user post into the session.

Real peers: the ``mcp`` SDK's legacy SSE server (``MCPServer.sse_app``) on loopback uvicorn
behind the real proxy behind ``shim.protect``, tokens from the test IdP's key, and the SDK's
``sse_client`` as the session owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import selectors
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth_shim.mcp_proxy import MCPReverseProxy
from tests.bridge.token_issuer import TokenIssuer
from tests.peers import node
from tests.peers.clients import SESSION_TIMEOUT_S
from tests.peers.procs import read_ready_line, stop
from tests.peers.servers import bind_loopback, free_port, serve_asgi

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@dataclass
class QueryLog:
    """The query string of every request the legacy server received, recorded as it arrives,
    before it is answered (a request log written when a response ends would race with streams
    closing). ``lines``: a peer's stdout with a ``POST <query>`` line per message, written
    before the message is answered; read when :meth:`arrived` is asked."""

    queries: list[str] = field(default_factory=list)
    lines: IO[str] | None = None

    def recording(self, app: ASGIApp) -> ASGIApp:
        async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.queries.append(scope["query_string"].decode())
            await app(scope, receive, send)

        return wrapper

    def arrived(self) -> list[str]:
        if self.lines is not None:
            # Raw reads of what the pipe holds now: a buffered readline could keep lines back.
            received = b""
            with selectors.DefaultSelector() as selector:
                selector.register(self.lines, selectors.EVENT_READ)
                while selector.select(0) and (chunk := os.read(self.lines.fileno(), 65536)):
                    received += chunk
            for line in received.decode().splitlines():
                if line.startswith("POST "):
                    self.queries.append(line[5:].lstrip("?"))
        return self.queries


@dataclass
class Front:
    origin: str
    issuer: TokenIssuer
    upstream_queries: QueryLog
    messages_path: str
    session_parameter: str

    def headers(self, subject: str) -> dict[str, str]:
        token = self.issuer.token(audience=self.origin + "/mcp", subject=subject)
        return {"authorization": f"Bearer {token}"}

    @contextlib.contextmanager
    def stream(self, subject: str, path: str = "/mcp/sse") -> Iterator[list[str]]:
        """Open a legacy SSE stream as ``subject``; yields the data lines of its first event."""
        with httpx.Client(timeout=10) as http:
            headers = {**self.headers(subject), "accept": "text/event-stream"}
            with http.stream("GET", self.origin + path, headers=headers) as response:
                assert response.status_code == 200
                # Not a for loop with break: closing the line iterator would close the stream.
                lines, data = response.iter_lines(), []
                for line in lines:
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield data
                        return
                yield data

    def post(self, subject: str, query: str, body: object = INIT) -> httpx.Response:
        return httpx.post(f"{self.origin}/mcp{self.messages_path}?{query}", json=body, headers=self.headers(subject), timeout=10)


def _legacy_server() -> MCPServer:
    server = MCPServer("legacy")

    @server.tool()
    def echo(text: str) -> str:
        return text

    return server


@contextlib.contextmanager
def python_legacy_server(queries: QueryLog) -> Iterator[str]:
    with serve_asgi(queries.recording(_legacy_server().sse_app())) as upstream:
        yield upstream.url


@contextlib.contextmanager
def typescript_legacy_server(queries: QueryLog, log: Path) -> Iterator[str]:
    node.ensure_installed()  # a fresh checkout has no peers yet: installed once from the lock
    script = Path(node.__file__).with_name("legacy_sse_server.mjs")
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [str(node.node_binary()), str(script)], cwd=script.parent, stdout=subprocess.PIPE, stderr=stderr,
            text=True, env=node.peer_env(),
        )
    try:
        url = read_ready_line(process, "READY ", 30, log)
        queries.lines = process.stdout
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def proxied(upstream_url: str, queries: QueryLog, messages_path: str, session_parameter: str) -> Iterator[Front]:
    """The legacy server at the root of its origin: ``/sse`` and ``messages_path``. Public
    ``/mcp`` maps to the root; ``/outside`` maps to ``/sse`` alone, so the message path it
    announces has no public URL."""
    sock = bind_loopback()
    origin = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    shim = issuer.shim(origin)
    proxy = MCPReverseProxy(upstream_url, mount_path="/mcp", sealer=shim.context.sealer)
    outside = MCPReverseProxy(upstream_url + "/sse", mount_path="/outside", sealer=shim.context.sealer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shim.lifespan(app):
            yield
        await proxy.aclose()
        await outside.aclose()

    guarded = shim.protect(proxy)
    routes = [Route("/mcp", guarded), Route("/mcp/{rest:path}", guarded), Route("/outside", shim.protect(outside))]
    with serve_asgi(Starlette(routes=[*shim.routes, *routes], lifespan=lifespan), sock) as running:
        yield Front(running.url, issuer, queries, messages_path, session_parameter)


@pytest.fixture(scope="module", params=["python-sdk", pytest.param("typescript-sdk", marks=pytest.mark.integration)])
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    queries = QueryLog()
    if request.param == "python-sdk":
        with python_legacy_server(queries) as url, proxied(url, queries, "/messages/", "session_id") as running:
            yield running
    else:
        log = tmp_path_factory.mktemp("legacy-ts") / "server.log"
        with typescript_legacy_server(queries, log) as url, proxied(url, queries, "/messages", "sessionId") as running:
            yield running


def _query(endpoint: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(endpoint).query)


@pytest.mark.anyio
async def test_the_sdk_legacy_sse_client_calls_tools_through_the_proxy(front: Front) -> None:
    async def call() -> str:
        async with sse_client(front.origin + "/mcp/sse", headers=front.headers("alice")) as streams:
            async with ClientSession(*streams) as session:
                await session.initialize()
                result = await session.call_tool("echo", {"text": "through the proxy"})
        return result.content[0].text  # type: ignore[union-attr]

    # A guard against a hang, not a performance assertion.
    assert await asyncio.wait_for(call(), 30) == "through the proxy"


@pytest.mark.integration
@pytest.mark.parametrize("transport", [[], ["--transport", "sse-only"]], ids=["falls-back-from-http", "sse-only"])
def test_mcp_remote_over_the_legacy_transport_calls_tools_through_the_proxy(
    front: Front, tmp_path: Path, transport: list[str]
) -> None:
    """mcp-remote tries Streamable HTTP first and falls back to the legacy transport when the
    server answers its POST with 405; ``--transport sse-only`` goes there at once (the token
    travels in ``--header``: the login is not the point here)."""
    node.ensure_installed()
    (tmp_path / "home").mkdir()
    token = front.headers("alice")["authorization"]
    params = StdioServerParameters(
        command=str(node.node_binary()),
        args=[str(node.package_bin("mcp-remote", "mcp-remote")), front.origin + "/mcp/sse", str(free_port()),
              *transport, "--header", f"Authorization:{token}"],
        env={"PATH": node.peer_env()["PATH"], "HOME": str(tmp_path / "home"), "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "config")},
        cwd=str(tmp_path),
    )

    async def call() -> str:
        with anyio.fail_after(SESSION_TIMEOUT_S), open(tmp_path / "mcp-remote.log", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=SESSION_TIMEOUT_S) as client:
                result = await client.call_tool("echo", {"text": "through mcp-remote"})
        return result.content[0].text  # type: ignore[union-attr]

    assert anyio.run(call) == "through mcp-remote", (tmp_path / "mcp-remote.log").read_text()


def test_the_endpoint_event_names_the_message_path_under_the_mount_path(front: Front) -> None:
    with front.stream("alice") as data:
        assert urlsplit(data[0]).path == "/mcp" + front.messages_path


def test_the_endpoint_event_hands_out_a_sealed_session_id_that_reaches_the_server_opened(front: Front) -> None:
    with front.stream("alice") as data:
        handed_out = _query(data[0])[front.session_parameter][0]
        assert front.post("alice", f"{front.session_parameter}={handed_out}").status_code == 202
        server_id = parse_qs(front.upstream_queries.arrived()[-1])[front.session_parameter][0]
    assert uuid.UUID(server_id) and handed_out != server_id


def test_another_users_legacy_session_id_is_404_and_never_reaches_the_server(front: Front) -> None:
    with front.stream("alice") as data:
        handed_out = _query(data[0])[front.session_parameter][0]
        seen_before = len(front.upstream_queries.arrived())
        assert front.post("mallory", f"{front.session_parameter}={handed_out}").status_code == 404
        assert len(front.upstream_queries.arrived()) == seen_before
        assert front.post("alice", f"{front.session_parameter}={handed_out}").status_code == 202


def test_the_servers_own_legacy_session_id_is_404_and_never_reaches_the_server(front: Front) -> None:
    """The id an intermediary's access log would hold once the server saw it."""
    with front.stream("alice") as data:
        assert front.post("alice", urlsplit(data[0]).query).status_code == 202
        leaked = front.upstream_queries.arrived()[-1]
        seen_before = len(front.upstream_queries.arrived())
        assert front.post("mallory", leaked).status_code == 404
        assert front.post("alice", leaked).status_code == 404
        assert len(front.upstream_queries.arrived()) == seen_before


@pytest.mark.parametrize(
    "query",
    ["session_id=" + "f" * 32, "session_id=a.b.c", "session_id=", "session_id", "%73ession_id=" + "f" * 32,
     "sessionId=" + "f" * 32, "x=1&session_id=" + "f" * 32],
    ids=["unknown", "dotted", "empty", "bare-name", "encoded-name", "typescript-name", "second-parameter"],
)
def test_a_legacy_session_id_the_proxy_did_not_hand_out_is_404_and_never_reaches_the_server(front: Front, query: str) -> None:
    seen_before = len(front.upstream_queries.arrived())
    response = front.post("alice", query)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"
    assert len(front.upstream_queries.arrived()) == seen_before


def test_an_endpoint_outside_the_proxied_path_ends_the_stream_without_it(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """The server announces its message path, which no public URL reaches: the client gets a
    stream that ends at once without an ``endpoint`` (its SDK then fails to connect), the
    operator a warning naming the path (never the session id)."""
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.mcp_proxy"), front.stream("alice", "/outside") as data:
        assert data == []
    warning = next(r.getMessage() for r in caplog.records if r.name == "mcp_oauth_shim.mcp_proxy")
    assert front.messages_path in warning and front.session_parameter not in warning


def test_a_compressed_stream_passes_unchanged_and_its_session_id_never_opens() -> None:
    """A stream with ``Content-Encoding`` cannot be read without decoding it, so it is passed
    on as sent: the client gets the server's own session id, which the proxy never opens. A
    misbehaving loopback server stands in for a legacy server behind a compressing middleware."""
    body = gzip.compress(b"event: endpoint\ndata: /messages/?session_id=" + b"f" * 32 + b"\n\n")
    reached: list[str] = []

    async def stream(request: Request) -> Response:
        return Response(body, media_type="text/event-stream", headers={"content-encoding": "gzip"})

    async def message(request: Request) -> Response:
        reached.append(request.url.query)
        return Response("Accepted", status_code=202)

    upstream_app = Starlette(routes=[Route("/sse", stream), Route("/messages/", message, methods=["POST"])])
    with serve_asgi(upstream_app) as upstream:
        proxy = MCPReverseProxy(upstream.url, mount_path="/mcp")
        with serve_asgi(proxy) as running:
            answer = httpx.get(running.url + "/mcp/sse", timeout=10)
            endpoint = answer.text.split("data: ")[1].strip()
            posted = httpx.post(running.url + "/mcp" + endpoint, json=INIT, timeout=10)
    assert (answer.content, endpoint, posted.status_code, reached) == (
        gzip.decompress(body), "/messages/?session_id=" + "f" * 32, 404, []
    )


def test_a_legacy_server_below_a_path_of_its_origin_is_announced_under_the_mount_path() -> None:
    """Upstream ``/legacy`` (its app mounted there: ``/legacy/sse``, ``/legacy/messages/``)
    behind public ``/mcp``: the event names ``/mcp/messages/``, and posting there works."""
    queries = QueryLog()
    upstream_app = Starlette(routes=[Mount("/legacy", app=_legacy_server().sse_app())])
    with serve_asgi(queries.recording(upstream_app)) as upstream, proxied(
        upstream.url + "/legacy", queries, "/messages/", "session_id"
    ) as front, front.stream("alice") as data:
        assert urlsplit(data[0]).path == "/mcp/messages/"
        assert front.post("alice", urlsplit(data[0]).query).status_code == 202

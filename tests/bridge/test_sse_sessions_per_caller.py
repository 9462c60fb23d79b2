"""The legacy HTTP+SSE endpoint (`mount_sse`) bounds the streams one verified caller holds open.

Every `GET /sse` opens a session that lives as long as its event stream: a long-lived
connection and a task running the MCP server. Without a bound, one user with a valid token
could open streams until the server runs out of connections or memory. The endpoint answers
a stream beyond `max_sessions_per_caller` exactly as `mount_http` answers a session beyond it
(429 with the same JSON-RPC error), counts the caller the same way (the user, whichever client
the token went to), and has a server-wide bound as `mount_http` does (`DEFAULT_MAX_SESSIONS`).

Real uvicorn on loopback, real RS256 tokens verified by the shim, real event streams kept open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp.client.client import Client
from mcp.client.sse import sse_client

from mcp_bridge import MCPBridge
from mcp_bridge.compat import FastApiMCP
from mcp_bridge.sessions import DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_CALLER
from mcp_bridge.sse import SSEEndpoint
from mcp_bridge.transport import MCPEndpoint
from tests.bridge.sample_app import build_app
from tests.bridge.test_auth import ACCEPT, INIT
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

LIMIT = 3


@dataclass
class SSEServer:
    url: str
    issuer: TokenIssuer
    endpoint: SSEEndpoint
    http: MCPEndpoint | None  # a Streamable HTTP endpoint on the same bridge, when asked for

    @property
    def sse(self) -> str:
        return self.url + "/sse"

    def token(self, subject: str, client: str = "upstream-client") -> str:
        """A token of `subject` issued to `client` (the shim's resource is `<url>/mcp`)."""
        return self.issuer.token(audience=self.url + "/mcp", subject=subject, extra_claims={"client_id": client, "azp": client})


@contextlib.contextmanager
def sse_server(*, auth: bool = True, with_http: bool = False, **mount: Any) -> Iterator[SSEServer]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    app: FastAPI = build_app()[0]
    bridge = MCPBridge(app, auth=issuer.shim(url) if auth else None)
    http = bridge.mount_http("/mcp", max_sessions_per_caller=mount["max_sessions_per_caller"]) if with_http else None
    endpoint = bridge.mount_sse("/sse", **mount)
    with serve_asgi(app, sock) as running:
        yield SSEServer(running.url, issuer, endpoint, http)


@dataclass
class Stream:
    """One `GET /sse`: the response, and (when the stream opened) its message endpoint."""

    response: httpx.Response
    lines: Iterator[str]
    messages: str | None

    @property
    def status(self) -> int:
        return self.response.status_code

    def __str__(self) -> str:
        """For failure messages: an open stream's message endpoint, or the refusal's body."""
        return f"{self.status}: {self.messages if self.messages is not None else self.response.text}"

    def next_data(self) -> str:
        return next(line[5:].strip() for line in self.lines if line.startswith("data:"))


def open_stream(stack: contextlib.ExitStack, server: SSEServer, token: str | None) -> Stream:
    """Open a stream that stays open until `stack` closes (its first event names the message endpoint)."""
    headers = {"accept": "text/event-stream"} | ({"authorization": f"Bearer {token}"} if token else {})
    response = stack.enter_context(httpx.stream("GET", server.sse, headers=headers, timeout=10))
    lines = response.iter_lines()
    # The stack holds the stream: a line iterator dropped by the caller would close it.
    stack.callback(lines.close)
    stream = Stream(response, lines, None)
    if response.status_code == 200:
        stream.messages = stream.next_data()
    else:
        response.read()
    return stream


def open_streams(stack: contextlib.ExitStack, server: SSEServer, token: str | None, count: int) -> list[Stream]:
    streams = [open_stream(stack, server, token) for _ in range(count)]
    assert [s.status for s in streams] == [200] * count
    return streams


def post(server: SSEServer, stream: Stream, message: dict[str, Any], token: str) -> httpx.Response:
    assert stream.messages is not None
    headers = {**ACCEPT, "authorization": f"Bearer {token}"}
    return httpx.post(server.url + stream.messages, json=message, headers=headers, timeout=10)


def test_a_caller_beyond_the_default_limit_gets_429_for_another_stream() -> None:
    """Before the bound, the 101st stream of one user opened like the first."""
    with sse_server() as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        open_streams(streams, server, alice, DEFAULT_MAX_SESSIONS_PER_CALLER)
        refused = open_stream(streams, server, alice)
    assert refused.status == 429, str(refused)


def test_the_refusal_is_the_answer_mount_http_gives_a_session_beyond_the_limit() -> None:
    with sse_server(with_http=True, max_sessions_per_caller=1) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        open_streams(streams, server, alice, 1)
        refused = open_stream(streams, server, alice)
        headers = {**ACCEPT, "authorization": f"Bearer {alice}"}
        assert httpx.post(server.url + "/mcp", json=INIT, headers=headers, timeout=10).status_code == 200
        http_refused = httpx.post(server.url + "/mcp", json=INIT, headers=headers, timeout=10)
    assert (refused.status, http_refused.status_code) == (429, 429)
    assert refused.response.headers["content-type"] == http_refused.headers["content-type"] == "application/json"
    assert refused.response.json() == http_refused.json()
    assert refused.response.json()["error"]["code"] == -32603
    assert refused.response.json()["error"]["message"].startswith("Too many open sessions for this caller")
    assert refused.response.headers.get("retry-after") == http_refused.headers.get("retry-after")


def test_another_caller_still_opens_streams_while_one_is_at_its_limit() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        open_streams(streams, server, server.token("alice"), LIMIT)
        bob = open_stream(streams, server, server.token("bob"))
    assert bob.status == 200 and bob.messages is not None


def test_the_streams_of_a_caller_at_its_limit_keep_working() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        first = open_streams(streams, server, alice, LIMIT)[0]
        assert open_stream(streams, server, alice).status == 429
        accepted = post(server, first, INIT, alice)
        answer = json.loads(first.next_data())
    assert accepted.status_code == 202
    assert answer["id"] == INIT["id"] and "serverInfo" in answer["result"]


async def _sdk_tool_names(server: SSEServer, token: str) -> list[str]:
    """A session of the SDK's own legacy SSE client: the tools it lists."""
    async with Client(sse_client(server.sse, headers={"authorization": f"Bearer {token}"}), mode="legacy") as session:  # type: ignore[arg-type]
        return [tool.name for tool in (await session.list_tools()).tools]


def test_the_sdk_client_of_a_caller_at_its_limit_is_refused_with_429() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        open_streams(streams, server, alice, LIMIT)
        with pytest.raises(httpx2.HTTPStatusError) as refused:
            asyncio.run(_sdk_tool_names(server, alice))
    assert refused.value.response.status_code == 429


def test_the_sdk_client_of_a_caller_below_its_limit_is_served() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        open_streams(streams, server, alice, LIMIT - 1)
        names = asyncio.run(_sdk_tool_names(server, alice))
    assert "text" in names


def test_a_stream_the_transport_refuses_for_its_origin_takes_no_place() -> None:
    """The SDK's Origin check answers inside the opening of the stream (403): the place it was
    counted in is given back."""
    with sse_server(max_sessions_per_caller=1) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {alice}", "origin": "https://evil.example"}
        foreign = [httpx.get(server.sse, headers=headers, timeout=10).status_code for _ in range(2)]
        allowed = open_stream(streams, server, alice)
    assert (foreign, allowed.status) == ([403, 403], 200), str(allowed)


def _open_when_a_place_is_free(server: SSEServer, token: str, stack: contextlib.ExitStack) -> Stream:
    """Open a stream, trying again while the server has not yet seen the closed one end
    (the disconnect reaches it asynchronously)."""
    for _ in range(200):
        attempt = contextlib.ExitStack()
        stream = open_stream(attempt, server, token)
        if stream.status != 429:
            stack.push(attempt)
            return stream
        attempt.close()
        time.sleep(0.05)
    return stream


def test_closing_a_stream_frees_its_place_for_a_new_one() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        first = contextlib.ExitStack()
        open_streams(first, server, alice, 1)
        open_streams(streams, server, alice, LIMIT - 1)
        assert open_stream(streams, server, alice).status == 429
        first.close()  # the client disconnects
        again = _open_when_a_place_is_free(server, alice, streams)
    assert again.status == 200, str(again)


async def _open_at_once(server: SSEServer, token: str, count: int) -> list[int]:
    """`count` streams of one caller requested at the same time, all kept open: their statuses."""
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client,
        contextlib.AsyncExitStack() as streams,
    ):
        opened = await asyncio.gather(
            *(streams.enter_async_context(client.stream("GET", server.sse, headers=headers)) for _ in range(count))
        )
        return [response.status_code for response in opened]


def test_streams_requested_at_once_open_no_more_than_the_limit() -> None:
    """The count and the opening of a stream are one step: requests racing past the count
    would each open a stream."""
    with sse_server(max_sessions_per_caller=LIMIT) as server:
        statuses = asyncio.run(_open_at_once(server, server.token("alice"), 5 * LIMIT))
    assert sorted(statuses) == [200] * LIMIT + [429] * (4 * LIMIT), statuses


@pytest.mark.parametrize(
    "clients",
    [
        pytest.param(["upstream-client"] * LIMIT + ["upstream-client"], id="a new token of the same client"),
        pytest.param([f"client-{n}" for n in range(LIMIT)] + ["one-more-client"], id="a new client each time"),
    ],
)
def test_the_limit_is_the_users_whichever_token_or_client_they_use(clients: list[str]) -> None:
    """Anyone may register clients (RFC 7591): a user signing in with a new client for each
    stream would otherwise hold the limit once per client."""
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        for client in clients[:-1]:
            open_streams(streams, server, server.token("alice", client), 1)
        refused = open_stream(streams, server, server.token("alice", clients[-1]))
    assert refused.status == 429, str(refused)


def test_the_server_refuses_a_stream_beyond_its_session_limit_with_503() -> None:
    with sse_server(max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        server.endpoint.max_sessions = 2
        open_streams(streams, server, server.token("alice"), 1)
        open_streams(streams, server, server.token("bob"), 1)
        refused = open_stream(streams, server, server.token("carol"))
    assert refused.status == 503
    assert refused.response.json()["error"] == {"code": -32603, "message": "Too many open sessions"}


def test_without_auth_there_is_no_caller_to_count_only_the_server_limit() -> None:
    with sse_server(auth=False, max_sessions_per_caller=1) as server, contextlib.ExitStack() as streams:
        statuses = [open_stream(streams, server, None).status for _ in range(3)]
        server.endpoint.max_sessions = 3
        beyond = open_stream(streams, server, None)
    assert (statuses, beyond.status) == ([200, 200, 200], 503)


@pytest.mark.parametrize("filled", ["sse", "http"])
def test_each_endpoint_counts_its_own_sessions(filled: str) -> None:
    """The limit bounds what one caller takes of one endpoint's sessions (each endpoint has
    its own server-wide bound): a user at the limit on /sse still opens a Streamable HTTP
    session on /mcp, and the other way round."""
    with sse_server(with_http=True, max_sessions_per_caller=LIMIT) as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        headers = {**ACCEPT, "authorization": f"Bearer {alice}"}

        def open_http() -> int:
            return httpx.post(server.url + "/mcp", json=INIT, headers=headers, timeout=10).status_code

        def open_sse() -> int:
            return open_stream(streams, server, alice).status

        fill, other = (open_sse, open_http) if filled == "sse" else (open_http, open_sse)
        assert [fill() for _ in range(LIMIT + 1)] == [200] * LIMIT + [429]
        assert other() == 200


@pytest.mark.parametrize(
    ("subject", "client"),
    [
        pytest.param("mallory", "upstream-client", id="another user"),
        pytest.param("alice", "another-client", id="the same user through another client"),
    ],
)
def test_a_message_for_another_callers_stream_is_refused_as_an_unknown_session(subject: str, client: str) -> None:
    """A stream's session is bound to the credential that opened it, as `mount_http` binds an
    `Mcp-Session-Id`: another caller gets the answer of a session that does not exist, and its
    message never reaches the stream."""
    with sse_server() as server, contextlib.ExitStack() as streams:
        alice = server.token("alice")
        stream = open_streams(streams, server, alice, 1)[0]
        intruding = post(server, stream, {"jsonrpc": "2.0", "id": "intruder", "method": "ping"}, server.token(subject, client))
        unknown = httpx.post(
            server.sse + "/messages/?session_id=" + "0" * 32,
            json=INIT,
            headers={**ACCEPT, "authorization": f"Bearer {alice}"},
            timeout=10,
        )
        assert post(server, stream, {"jsonrpc": "2.0", "id": "owner", "method": "ping"}, alice).status_code == 202
        first_answer = json.loads(stream.next_data())
    assert (intruding.status_code, intruding.text) == (unknown.status_code, unknown.text) == (404, "Could not find session")
    assert first_answer["id"] == "owner"


def test_the_default_limits_are_those_of_mount_http() -> None:
    bridge = MCPBridge(build_app()[0])
    sse, http = bridge.mount_sse("/sse"), bridge.mount_http("/mcp")
    assert (sse.max_sessions_per_caller, sse.max_sessions) == (DEFAULT_MAX_SESSIONS_PER_CALLER, DEFAULT_MAX_SESSIONS)
    assert (sse.max_sessions_per_caller, sse.max_sessions) == (http.sessions.max_sessions_per_caller, http.sessions.max_sessions)


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused_when_mounting(limit: int) -> None:
    with pytest.raises(ValueError, match="max_sessions_per_caller"):
        MCPBridge(build_app()[0]).mount_sse("/sse", max_sessions_per_caller=limit)


def test_the_compat_facade_passes_the_limit_to_the_endpoint() -> None:
    endpoint = FastApiMCP(build_app()[0]).mount_sse(max_sessions_per_caller=LIMIT)
    assert endpoint.max_sessions_per_caller == LIMIT

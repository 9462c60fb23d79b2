"""A client that sends its request body too slowly gets 408 and its connection closed.

Real uvicorn on loopback, a raw socket as the client: it sends the request head and part of the
body, then nothing. The served app is the one ``serve`` builds (``app_factory.build_app``) with
``--body-timeout`` set, so what is shown is what an operator runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_oauth_shim import cli
from mcp_oauth_shim.app_factory import build_app, build_shim
from mcp_oauth_shim.body_deadline import BodyDeadlineMiddleware
from tests.peers.servers import serve_asgi

from .test_cli_operator_errors import BASE_ENV, run_main

DEADLINE = 0.5
# uvicorn runs on uvloop here, whose timers count whole milliseconds from a clock read once per
# loop iteration: a timer may fire up to about a millisecond before the client's clock says the
# deadline is up (a fresh-clone run measured 0.49997 s). Ten milliseconds covers that rounding
# and nothing a real early answer could hide in.
TIMER_GRANULARITY = 0.01
# Bounded time, not a performance figure: the deadline plus room for a busy machine.
ANSWER_WITHIN = DEADLINE + 5.0


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    """``serve``'s app with ``--body-timeout 0.5`` on a loopback port."""
    environ = {**BASE_ENV, "MCP_OAUTH_SHIM_BODY_TIMEOUT": str(DEADLINE)}
    settings = cli.serve_settings(cli.parser().parse_args(["serve"]), environ)
    app = build_app(settings, build_shim(settings))
    with serve_asgi(app) as running:
        host, port = running.url.removeprefix("http://").split(":")
        yield host, int(port)


def _head(path: str, length: int, content_type: str = "application/x-www-form-urlencoded") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(ANSWER_WITHIN)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# What each endpoint reads: it checks the media type before it waits for the body.
MEDIA_TYPES = {"/oauth/register": "application/json", "/": "application/json"}


def _send_slowly(address: tuple[str, int], path: str) -> tuple[bytes, float]:
    """Head and 5 of 200 body bytes, then silence: the answer (until the server closes) and
    how long it took."""
    with socket.create_connection(address) as sock:
        started = time.monotonic()
        sock.sendall(_head(path, 200, MEDIA_TYPES.get(path, "application/x-www-form-urlencoded")) + b"grant")
        return _read_until_closed(sock), time.monotonic() - started


# Every endpoint of serve's app that reads a body.
BODY_ENDPOINTS = ["/oauth/token", "/oauth/register", "/oauth/revoke", "/oauth/consent"]


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed(
    served: tuple[str, int], path: str
) -> None:
    answer, took = _send_slowly(served, path)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body) == {"error": "invalid_request", "error_description": "The request body did not arrive in time."}
    assert DEADLINE - TIMER_GRANULARITY <= took < ANSWER_WITHIN


def test_the_408_carries_the_request_id(served: tuple[str, int]) -> None:
    answer, _ = _send_slowly(served, "/oauth/token")
    assert b"\r\nx-request-id: " in answer.partition(b"\r\n\r\n")[0].lower()


def test_a_body_sent_in_pieces_within_the_deadline_is_served(served: tuple[str, int]) -> None:
    body = json.dumps({"redirect_uris": ["http://127.0.0.1:5555/cb"], "client_name": "slow but in time"}).encode()
    with socket.create_connection(served) as sock:
        sock.sendall(_head("/oauth/register", len(body), "application/json") + body[:10])
        time.sleep(DEADLINE / 3)
        sock.sendall(body[10:30])
        time.sleep(DEADLINE / 3)
        sock.sendall(body[30:])
        sock.settimeout(ANSWER_WITHIN)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]


def test_the_server_keeps_serving_while_slow_bodies_wait(served: tuple[str, int]) -> None:
    slow = socket.create_connection(served)
    try:
        slow.sendall(_head("/oauth/token", 200) + b"g")
        with socket.create_connection(served) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(ANSWER_WITHIN)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        slow.close()


def test_a_chunked_body_dripped_chunk_by_chunk_gets_408_at_the_deadline(served: tuple[str, int]) -> None:
    """Each chunk arrives in time; the whole body does not: the deadline is the body's."""
    with socket.create_connection(served) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.settimeout(DEADLINE / 5)
        answer = b""
        while not answer and time.monotonic() - started < ANSWER_WITHIN:
            sock.sendall(b"1\r\ng\r\n")
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                pass
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_a_client_that_expects_100_continue_and_sends_nothing_gets_408(served: tuple[str, int]) -> None:
    with socket.create_connection(served) as sock:
        sock.sendall(_head("/oauth/token", 200).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 100 "), answer[:200]
    assert b"\r\n\r\nHTTP/1.1 408 " in answer, answer[:300]


def test_a_slow_body_to_the_mcp_proxy_with_a_valid_token_gets_408() -> None:
    """``--mcp-upstream``: the token is checked, then the proxy waits for the body."""
    from tests.bridge.token_issuer import TokenIssuer
    from tests.peers.servers import bind_loopback

    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    environ = {
        **BASE_ENV, "MCP_OAUTH_SHIM_BODY_TIMEOUT": str(DEADLINE), "MCP_OAUTH_SHIM_PUBLIC_URL": url,
        "MCP_OAUTH_SHIM_MCP_UPSTREAM": "http://127.0.0.1:9/mcp",  # never reached: the body never ends
    }
    settings = cli.serve_settings(cli.parser().parse_args(["serve"]), environ)
    app = build_app(settings, issuer.shim(url, resource=url + "/mcp"))
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
        f"Authorization: Bearer {issuer.token(audience=url + '/mcp')}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n{"
    ).encode()
    with serve_asgi(app, sock), socket.create_connection(sock.getsockname()[:2]) as client:
        client.sendall(head)
        answer = _read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def _drip_until_closed(address: tuple[str, int], head: bytes) -> tuple[bytes, bool]:
    """``head`` and a body byte every 0.1 s for up to ``ANSWER_WITHIN`` seconds: what the server
    answered, and whether it closed the connection meanwhile."""
    with socket.create_connection(address) as sock:
        sock.sendall(head + b"g")
        sock.settimeout(0.1)
        answer = b""
        started = time.monotonic()
        while time.monotonic() - started < ANSWER_WITHIN:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                return answer, True
            if chunk == b"":
                return answer, True
            answer += chunk or b""
            try:
                sock.sendall(b"g")
            except OSError:
                return answer, True
        return answer, False


# Requests the app answers without reading their body: the deadline never sees those reads.
UNREAD_BODIES = [("POST", "/no-such-path"), ("GET", "/healthz"), ("POST", "/.well-known/oauth-authorization-server")]


@pytest.mark.parametrize(("method", "path"), UNREAD_BODIES)
def test_a_body_the_app_does_not_read_cannot_hold_the_connection(
    served: tuple[str, int], method: str, path: str
) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n".encode()
    answer, closed = _drip_until_closed(served, head)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    assert b"\r\nconnection: close" in answer.partition(b"\r\n\r\n")[0].lower()
    assert closed, "the server kept reading a body nobody reads"


def test_requests_without_a_body_keep_the_connection_alive(served: tuple[str, int]) -> None:
    with socket.create_connection(served) as sock:
        sock.settimeout(ANSWER_WITHIN)
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert b"\r\nconnection: close" not in answer.lower()


# -- the middleware around other apps -----------------------------------------------------------


async def waits_for_the_client_after_the_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body, then listens for a disconnect for twice the deadline (an event stream
    does this); answers whether the client went away meanwhile."""
    await Request(scope, receive).body()
    try:
        message = await asyncio.wait_for(receive(), DEADLINE * 2)
        said = message["type"]
    except TimeoutError:
        said = "still connected"
    await PlainTextResponse(said)(scope, receive, send)


async def raises_on_the_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that does not expect a disconnect: Starlette's ``body()`` raises ClientDisconnect."""
    await Request(scope, receive).body()
    await PlainTextResponse("read")(scope, receive, send)


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` in a Starlette app, which answers the lifespan the test server runs."""
    return Starlette(routes=[Mount("/", app=app)])


def test_reads_after_the_body_are_not_bounded() -> None:
    app = with_lifespan(BodyDeadlineMiddleware(waits_for_the_client_after_the_body, seconds=DEADLINE))
    with serve_asgi(app) as running:
        address = ("127.0.0.1", int(running.url.rsplit(":", 1)[1]))
        with socket.create_connection(address) as sock:
            sock.sendall(_head("/", 4) + b"data")
            sock.settimeout(ANSWER_WITHIN + DEADLINE * 2)
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"still connected"), answer


def test_an_app_that_raises_on_the_disconnect_still_gives_408_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = with_lifespan(BodyDeadlineMiddleware(raises_on_the_disconnect, seconds=DEADLINE))
    with caplog.at_level(logging.ERROR), serve_asgi(app) as running:
        answer, _ = _send_slowly(("127.0.0.1", int(running.url.rsplit(":", 1)[1])), "/")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


class Note(BaseModel):
    text: str


def fastapi_with_a_json_body() -> ASGIApp:
    """FastAPI answers a body it could not read with its own 400 ("error parsing the body")."""
    app = FastAPI()

    @app.post("/")
    async def take(note: Note) -> dict[str, str]:
        return {"text": note.text}

    return app


def starlette_reading_json() -> ASGIApp:
    """Starlette's error handler answers the ClientDisconnect of ``request.json()`` with 500."""
    from starlette.routing import Route

    async def take(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(await request.json()))

    return Starlette(routes=[Route("/", take, methods=["POST"])])


# Frameworks answer the disconnect the deadline reports with an answer of their own.
FRAMEWORK_APPS = {"FastAPI": fastapi_with_a_json_body, "Starlette": starlette_reading_json}


@pytest.mark.parametrize("framework", FRAMEWORK_APPS)
def test_an_app_that_answers_the_disconnect_itself_still_gives_408(framework: str) -> None:
    app = BodyDeadlineMiddleware(FRAMEWORK_APPS[framework](), seconds=DEADLINE)
    with serve_asgi(app) as running:
        answer, _ = _send_slowly(("127.0.0.1", int(running.url.rsplit(":", 1)[1])), "/")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_a_deadline_that_is_no_positive_number_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        BodyDeadlineMiddleware(raises_on_the_disconnect, seconds=seconds)


# -- the option ---------------------------------------------------------------------------------


def test_serve_reports_the_body_timeout_and_defaults_to_30_seconds() -> None:
    code, out, _ = run_main(["serve", "--check"], {})
    assert code == 0
    assert any(line.split()[:2] == ["body-timeout", "30.0"] for line in out.splitlines()), out


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "3601"])
def test_a_body_timeout_that_is_no_positive_number_of_seconds_is_one_line(value: str) -> None:
    code, _, err = run_main(["serve", "--check"], {"MCP_OAUTH_SHIM_BODY_TIMEOUT": value})
    assert code == 2
    [line] = err.strip().splitlines()
    assert "--body-timeout / MCP_OAUTH_SHIM_BODY_TIMEOUT" in line and "seconds" in line

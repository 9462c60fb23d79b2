"""A client that sends its request head too slowly (or nothing at all) gets 408 and is let go.

Real uvicorn on loopback, raw sockets as clients. The shim's app is served by a real
``mcp-oauth-shim serve`` process (uvicorn's automatic choices: httptools, and uvloop where it is
installed), and in this process under each protocol the deadline is built for (httptools, h11)
on asyncio's own event loop.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_oauth_shim import cli
from tests.peers.procs import start_serve, stop
from tests.peers.servers import RunningServer, free_port, serve_asgi

from .test_cli_operator_errors import BASE_ENV, run_main

if TYPE_CHECKING:
    from mcp_oauth_shim.header_deadline import HeaderDeadline

DEADLINE = 0.5
# Longer than DEADLINE: a request with a slow body outlives the header deadline.
BODY_DEADLINE = 1.5
# Bounded time, not a performance figure: the deadline plus room for a busy machine.
ANSWER_WITHIN = BODY_DEADLINE + 5.0
TIMED_OUT = {"error": "invalid_request", "error_description": "The request header section did not arrive in time."}
SERVE_ENV = {
    **BASE_ENV,
    "MCP_OAUTH_SHIM_HEADER_TIMEOUT": str(DEADLINE),
    "MCP_OAUTH_SHIM_BODY_TIMEOUT": str(BODY_DEADLINE),
}
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def serve_process() -> Iterator[tuple[str, int]]:
    """``mcp-oauth-shim serve`` with ``--header-timeout 0.5``, in its own process."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        process = start_serve(SERVE_ENV, port, output)
        try:
            yield "127.0.0.1", port
        finally:
            stop(process)


def in_process(protocol: str) -> Iterator[tuple[str, int]]:
    """``serve``'s app with the same settings, in this process under uvicorn's ``protocol`` and
    asyncio's own event loop (uvloop is no dependency of the shim)."""
    from mcp_oauth_shim.app_factory import build_app, build_shim

    settings = cli.serve_settings(cli.parser().parse_args(["serve"]), SERVE_ENV)
    with serve_with_deadline(build_app(settings, build_shim(settings)), protocol, DEADLINE) as running:
        yield "127.0.0.1", int(running.url.rsplit(":", 1)[1])


# serve as operators run it (uvicorn's automatic choices: httptools, uvloop where installed, as
# here for the benchmarks), and serve's app in process under each protocol on asyncio's loop.
SERVERS = ["serve", "httptools", "h11"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    yield from serve_process() if request.param == "serve" else in_process(request.param)


def protocols() -> dict[str, type[HeaderDeadline]]:
    from mcp_oauth_shim.header_deadline import H11WithHeaderDeadline, HttpToolsWithHeaderDeadline

    return {"httptools": HttpToolsWithHeaderDeadline, "h11": H11WithHeaderDeadline}


PROTOCOLS = ["httptools", "h11"]


def serve_with_deadline(app: ASGIApp, protocol: str, seconds: float, **settings: Any) -> AbstractContextManager[RunningServer]:
    """``app`` under uvicorn's ``protocol`` with a header deadline of ``seconds``."""
    return serve_asgi(app, http=protocols()[protocol].with_seconds(seconds), loop="asyncio", **settings)


class _Unclosable(io.BytesIO):
    """What was read off a socket, for http.client to parse one response after another (it
    closes its stream after each response)."""

    def close(self) -> None:
        pass


def responses(data: bytes) -> list[tuple[int, http.client.HTTPMessage, bytes]]:
    """Status, header fields and body of each response in ``data``, parsed by http.client."""
    stream = _Unclosable(data)

    class Recorded:
        def makefile(self, mode: str) -> io.BytesIO:
            return stream

    parsed = []
    while stream.tell() < len(data):
        response = http.client.HTTPResponse(Recorded())  # type: ignore[arg-type]
        response.begin()
        parsed.append((response.status, response.msg, response.read()))
    return parsed


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(ANSWER_WITHIN)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def trickle(sock: socket.socket, slowly: bytes, *, every: float = 0.05) -> bytes:
    """``slowly`` one byte every ``every`` seconds until the server answers; then everything
    until it closes the connection."""
    sock.settimeout(every)
    started = time.monotonic()
    for byte in slowly:
        sock.sendall(bytes([byte]))
        try:
            first = sock.recv(65536)
        except TimeoutError:
            continue
        return first + read_until_closed(sock)
    raise AssertionError(f"no answer within {time.monotonic() - started:.1f} s of trickling")


def assert_timed_out(response: tuple[int, http.client.HTTPMessage, bytes]) -> None:
    status, headers, body = response
    assert status == 408, response
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert json.loads(body) == TIMED_OUT


# A head that would take 10 s at a byte every 0.05 s.
SLOW_HEADER_FIELD = b"X-Slow: " + b"a" * 200


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        [answer] = responses(read_until_closed(sock))
    assert_timed_out(answer)


def test_a_request_line_sent_a_byte_at_a_time_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        [answer] = responses(trickle(sock, b"GET /healthz?" + b"a" * 200 + b" HTTP/1.1\r\n"))
    assert_timed_out(answer)


def test_header_fields_sent_a_byte_at_a_time_get_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        [answer] = responses(trickle(sock, SLOW_HEADER_FIELD))
    assert_timed_out(answer)


def test_a_second_request_sent_a_byte_at_a_time_on_a_kept_alive_connection_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(HEALTHZ)
        sock.settimeout(ANSWER_WITHIN)
        first = sock.recv(65536)  # the server answered: the connection is idle or nearly so
        served, timed_out = responses(first + trickle(sock, b"GET /healthz HTTP/1.1\r\n" + SLOW_HEADER_FIELD))
    assert served[0] == 200
    assert_timed_out(timed_out)


def test_a_pipelined_request_sent_slowly_after_a_complete_one_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(HEALTHZ + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        served, timed_out = responses(trickle(sock, SLOW_HEADER_FIELD))
    assert served[0] == 200
    assert_timed_out(timed_out)


def test_a_slow_body_gets_the_body_deadlines_408_not_this_one(server: tuple[str, int]) -> None:
    """The head is complete: from then on the body deadline (1.5 s) is in charge, not the
    header deadline (0.5 s)."""
    head = (
        b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant"
    )
    with socket.create_connection(server) as sock:
        sock.sendall(head)
        [(status, _, body)] = responses(read_until_closed(sock))
    assert status == 408
    assert json.loads(body)["error_description"] == "The request body did not arrive in time."


def test_the_server_keeps_serving_while_heads_are_awaited(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as waiting, socket.create_connection(server) as sock:
        waiting.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.sendall(HEALTHZ)
        sock.settimeout(ANSWER_WITHIN)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


# -- the deadline around other apps, under both protocols --------------------------------------


# Room enough for a head sent in three pieces on a busy machine.
IN_TIME_DEADLINE = 1.0


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def in_pieces(sock: socket.socket, head: bytes) -> None:
    """``head`` in three pieces, 0.3 of the deadline apart."""
    for piece in (head[:5], head[5:20], head[20:]):
        sock.sendall(piece)
        if piece is not head[20:]:
            time.sleep(IN_TIME_DEADLINE * 0.3)


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: but in time\r\n\r\n"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_head_sent_slowly_but_in_time_is_served(protocol: str) -> None:
    app = Starlette(routes=[Route("/", hello)])
    with serve_with_deadline(app, protocol, IN_TIME_DEADLINE) as running:
        with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
            in_pieces(sock, SLOW_HEAD)
            sock.settimeout(ANSWER_WITHIN)
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello"), answer


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_request_on_a_kept_alive_connection_gets_its_own_deadline(protocol: str) -> None:
    """Three heads, each in time, together longer than the deadline."""
    app = Starlette(routes=[Route("/", hello)])
    with serve_with_deadline(app, protocol, IN_TIME_DEADLINE) as running:
        with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
            answers = []
            for _ in range(3):
                in_pieces(sock, SLOW_HEAD)
                sock.settimeout(ANSWER_WITHIN)
                answers.append(sock.recv(65536))
    assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(b"hello") for a in answers), answers


async def event_stream(request: Request) -> StreamingResponse:
    async def events() -> object:
        for number in range(6):
            await asyncio.sleep(DEADLINE / 2)
            yield f"data: {number}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def late_answer(request: Request) -> PlainTextResponse:
    await asyncio.sleep(DEADLINE * 3)
    return PlainTextResponse("late")


# Responses that take three times the deadline, in pieces or at once.
SLOW_RESPONSES = {"/events": b"".join(b"data: %d\n\n" % n for n in range(6)), "/late": b"late"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("path", SLOW_RESPONSES)
def test_a_long_response_is_not_cut(protocol: str, path: str) -> None:
    app = Starlette(routes=[Route("/events", event_stream), Route("/late", late_answer)])
    with serve_with_deadline(app, protocol, DEADLINE) as running:
        with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            [(status, _, body)] = responses(read_until_closed(sock))
    assert (status, body) == (200, SLOW_RESPONSES[path])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_timed_out_head_is_one_info_line_and_no_error(protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    app = Starlette(routes=[Route("/", hello)])
    uvicorn_logger = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG), serve_with_deadline(app, protocol, DEADLINE) as running:
            caplog.clear()  # uvicorn's start-up lines
            with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n")
                answer = read_until_closed(sock)
            time.sleep(DEADLINE)  # the server's side of the close
            records = [r for r in caplog.records if not r.name.startswith("uvicorn.error") or r.levelno > logging.INFO]
    finally:
        uvicorn_logger.removeHandler(caplog.handler)
    assert answer.startswith(b"HTTP/1.1 408 ")
    [record] = [r for r in records if r.name == "mcp_oauth_shim.header_deadline"]
    assert record.levelno == logging.INFO and record.exc_info is None
    assert not [r for r in records if r.levelno >= logging.WARNING or r.exc_info], caplog.text


# -- the option ---------------------------------------------------------------------------------


def test_serve_reports_the_header_timeout_and_defaults_to_10_seconds() -> None:
    code, out, _ = run_main(["serve", "--check"], {})
    assert code == 0
    assert any(line.split()[:3] == ["header-timeout", "10.0", "[default]"] for line in out.splitlines()), out
    assert "not enforced" not in out


def test_the_header_timeout_flag_wins_over_the_variable() -> None:
    code, out, _ = run_main(["serve", "--check", "--header-timeout", "2.5"], {"MCP_OAUTH_SHIM_HEADER_TIMEOUT": "7"})
    assert code == 0
    assert any(line.split()[:3] == ["header-timeout", "2.5", "[flag]"] for line in out.splitlines()), out


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "3601"])
def test_a_header_timeout_that_is_no_positive_number_of_seconds_is_one_line(value: str) -> None:
    code, _, err = run_main(["serve", "--check"], {"MCP_OAUTH_SHIM_HEADER_TIMEOUT": value})
    assert code == 2
    [line] = err.strip().splitlines()
    assert "--header-timeout / MCP_OAUTH_SHIM_HEADER_TIMEOUT" in line and "seconds" in line


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_a_protocol_deadline_that_is_no_positive_number_is_refused(seconds: float) -> None:
    from mcp_oauth_shim.header_deadline import H11WithHeaderDeadline

    with pytest.raises(ValueError, match="positive"):
        H11WithHeaderDeadline.with_seconds(seconds)


def test_serve_keeps_uvicorns_own_choice_of_protocol() -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from mcp_oauth_shim.header_deadline import protocol_with_header_deadline

    chosen = protocol_with_header_deadline(3.0)
    assert issubclass(chosen, AutoHTTPProtocol) and chosen.seconds == 3.0


def an_unknown_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "__version__", "1.0.0")


def another_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn.protocols.http.auto

    monkeypatch.setattr(uvicorn.protocols.http.auto, "AutoHTTPProtocol", asyncio.Protocol)


def a_missing_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    monkeypatch.delattr(AutoHTTPProtocol, "on_response_complete")


# uvicorns unlike the ones the deadline is built on.
UNKNOWN_UVICORNS = {"version 1.0": an_unknown_version, "another protocol": another_protocol, "a hook missing": a_missing_hook}


@pytest.mark.parametrize("uvicorn_like", UNKNOWN_UVICORNS)
def test_with_an_unknown_uvicorn_serve_says_the_header_timeout_is_not_enforced(
    uvicorn_like: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    UNKNOWN_UVICORNS[uvicorn_like](monkeypatch)
    code, out, _ = run_main(["serve", "--check"], {})
    assert code == 0
    [warning] = [line for line in out.splitlines() if "--header-timeout" in line]
    assert warning.strip().startswith("warning: --header-timeout is not enforced: "), out


def uvicorn_version() -> tuple[int, ...]:
    import uvicorn

    return tuple(int(part) for part in uvicorn.__version__.split(".")[:2])


@pytest.mark.skipif(uvicorn_version() < (0, 36), reason="uvicorn takes --http as an import string since 0.36")
@pytest.mark.parametrize("name", ["HttpToolsWithHeaderDeadline", "H11WithHeaderDeadline"])
def test_uvicorns_command_line_loads_the_protocol_by_name_with_the_default_deadline(name: str) -> None:
    """``uvicorn --factory mcp_oauth_shim.cli:create_app --http mcp_oauth_shim.header_deadline:<name>``."""
    import uvicorn

    from mcp_oauth_shim.header_deadline import HeaderDeadline

    config = uvicorn.Config(Starlette(), http=f"mcp_oauth_shim.header_deadline:{name}")
    config.load()
    assert issubclass(config.http_protocol_class, HeaderDeadline) and config.http_protocol_class.seconds == 10.0


def test_a_client_that_keeps_sending_after_the_408_reads_it_whole_and_is_let_go(server: tuple[str, int]) -> None:
    """After the 408 the server closes its side, drops what the client still sends for at most
    LINGER_SECONDS (2 s), then closes the connection."""
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.settimeout(0.05)
        received, answered, let_go, started = b"", False, False, time.monotonic()
        while not let_go and time.monotonic() - started < ANSWER_WITHIN:
            try:
                sock.sendall(b"X-More: a\r\n")
                if not answered:
                    chunk = sock.recv(65536)
                    answered = chunk == b""  # the server's side is closed: the 408 is whole
                    received += chunk
                else:
                    time.sleep(0.05)
            except TimeoutError:
                pass
            except OSError:  # the server closed the connection: the next bytes are refused
                let_go = True
    assert answered and let_go, (answered, let_go)
    [answer] = responses(received)
    assert_timed_out(answer)


class SwitchedProtocol(asyncio.Protocol):
    """Stands in for uvicorn's WebSocket protocol (no WebSocket library is installed here):
    takes the connection over after an upgrade, says so, and keeps it open."""

    def __init__(self, **uvicorn_arguments: object) -> None:
        self.transport: Any = None  # uvloop's transports are no asyncio.Transport subclasses

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"GET "):
            self.transport.write(b"switched\n")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_connection_upgraded_to_websocket_is_left_to_its_new_protocol(protocol: str) -> None:
    app = Starlette(routes=[Route("/", hello)])
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with serve_with_deadline(app, protocol, DEADLINE, ws=SwitchedProtocol) as running:
        with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(upgrade)
            sock.settimeout(ANSWER_WITHIN)
            switched = sock.recv(65536)
            sock.settimeout(DEADLINE * 3)
            with pytest.raises(TimeoutError):  # neither a 408 nor a close
                sock.recv(65536)
    assert switched == b"switched\n"

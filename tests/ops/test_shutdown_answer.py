"""A request still in flight when the server's shutdown timeout passes is answered 503 with
``Retry-After`` (or, when its response had started, ended cleanly), never uvicorn's 500 and
traceback.

In process: the middleware around apps that are cancelled at each point of an exchange. Real
uvicorn: a server stopped with an event stream open ends the stream and logs no traceback. The
``serve`` command itself is shown in ``test_cli_operator_errors.py`` (a request waiting on a
silent IdP at SIGTERM gets 503).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from mcp_oauth_shim.shutdown import ShutdownMiddleware

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn cancels asyncio tasks; that is what the middleware answers


async def waits_forever(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.Event().wait()


async def starts_a_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
    await asyncio.Event().wait()


async def answers_then_waits(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
    await asyncio.Event().wait()  # say, cleanup after the answer


async def cancel_inside(app: ShutdownMiddleware, scope: Scope, send: Send) -> None:
    """Run ``app`` as uvicorn does, then cancel its task as uvicorn's shutdown timeout does."""

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(app(scope, receive, send))
    await asyncio.sleep(0.01)
    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
    await task  # the middleware answered: the task ends without raising


def http_scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/oauth/token", "headers": []}


async def test_a_request_not_yet_answered_gets_503_with_retry_after_and_connection_close() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await cancel_inside(ShutdownMiddleware(waits_forever), http_scope(), send)
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert (headers[b"retry-after"], headers[b"connection"], headers[b"cache-control"]) == (b"1", b"close", b"no-store")
    assert json.loads(body["body"])["error"] == "temporarily_unavailable"
    assert int(headers[b"content-length"]) == len(body["body"])


async def test_a_started_response_is_ended_with_its_last_empty_chunk() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await cancel_inside(ShutdownMiddleware(starts_a_stream), http_scope(), send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert sent[0]["status"] == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_response_already_complete_gets_nothing_more() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await cancel_inside(ShutdownMiddleware(answers_then_waits), http_scope(), send)
    assert [m.get("status") for m in sent] == [204, None]


async def test_a_connection_already_gone_ends_the_request_quietly() -> None:
    async def send(message: Message) -> None:
        raise ConnectionResetError("the client is gone")

    await cancel_inside(ShutdownMiddleware(waits_forever), http_scope(), send)


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        pass

    await ShutdownMiddleware(lifespan_app)({"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]


def test_a_stopping_uvicorn_ends_an_open_event_stream_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Real uvicorn, shutdown timeout 0.2 s, an event stream open: the client's stream ends (the
    chunked body's last chunk arrives) and uvicorn logs no "Exception in ASGI application"."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(ShutdownMiddleware(starts_a_stream), lifespan="off", log_level="info", timeout_graceful_shutdown=0.2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    with caplog.at_level(logging.INFO):
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
                received = client.recv(65536)
                assert received.startswith(b"HTTP/1.1 200")
                server.should_exit = True
                while chunk := client.recv(65536):
                    received += chunk
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
    assert received.endswith(b"0\r\n\r\n"), received  # the chunked body ended, not cut off
    assert "Exception in ASGI application" not in caplog.text
    assert "the server is stopping" in caplog.text

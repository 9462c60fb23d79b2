"""Serve an ASGI app on loopback under uvicorn, in a background thread, for one test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0


def bind_loopback() -> socket.socket:
    """A listening socket on 127.0.0.1 with a kernel-chosen port.

    Binding before anything else starts lets the URL (and so the redirect URI registered at
    the IdP) be known up front without the race of "find a free port, then bind it".
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def free_port() -> int:
    """A port that was free a moment ago, for peers that insist on binding it themselves
    (mcp-remote's callback port). Prefer `bind_loopback()` wherever a socket can be handed over."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RequestLog:
    """Method, path and status of every request (never the query: codes and tokens live
    there), to show what a peer did when a test fails."""

    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.lines[-60:])


def _logged(app: ASGIApp, log: RequestLog) -> ASGIApp:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            log.lines.append(f"{scope['method']} {scope['path']} -> {status[0] if status else 'no response'}")

    return wrapper


@dataclass(frozen=True)
class RunningServer:
    url: str
    requests: RequestLog


@contextmanager
def serve_asgi(app: ASGIApp, sock: socket.socket | None = None, **settings: Any) -> Iterator[RunningServer]:
    """Run `app` (lifespan included) on `sock` (default: a fresh loopback socket) until the
    block ends; `settings`: more uvicorn settings (its `http` or `ws` protocol, say)."""
    sock = sock or bind_loopback()
    host, port = sock.getsockname()[:2]
    requests = RequestLog()
    # access_log off: uvicorn's access log prints query strings, which carry codes.
    config = uvicorn.Config(
        _logged(app, requests),
        lifespan="on",
        log_level="warning",
        access_log=False,
        # Open MCP streams (GET /mcp) would hold a graceful shutdown forever.
        timeout_graceful_shutdown=3,
        **settings,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn on port {port} did not start (see the captured log)")
        time.sleep(0.02)
    try:
        yield RunningServer(url=f"http://{host}:{port}", requests=requests)
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        sock.close()

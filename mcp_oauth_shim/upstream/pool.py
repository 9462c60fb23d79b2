"""A lean HTTP/1.1 keep-alive client for the one hot call the shim makes: POSTs to the IdP.

Every ``/oauth/token`` request is proxied to the IdP, so the client's cost per request is the
shim's cost per login and refresh. Measured in bench/ (``token proxy on ...`` rows, same run,
a local stub IdP): httpx reached 0.10x of a direct call at c=1 and 0.01x at c=16, httpx2
0.16x / 0.04x, aiohttp 0.31x / 0.21x, a plain keep-alive socket pool 0.47x / 0.54x. This module
is that pool: a few connections per origin kept alive, TLS with certificate and host name
verification from :mod:`ssl`, one deadline per exchange, and nothing else (no redirects, no
proxies, no cookies, no compression). Where a response ends is decided by llhttp
(:mod:`.framing`). Discovery and the JWKS travel on it too (:mod:`.transport`); everything
goes through httpx instead when an ``http_client`` is passed to the shim.

A request is sent once and never again (RFC 9112 §9.3.1): the POSTs this pool carries are not
idempotent, and an IdP that rotates refresh tokens with reuse detection revokes the user's
grant when the same refresh token arrives twice. A connection that closes before its answer is
an :class:`HTTPError`. To make that rare, an idle connection is reused only for
:data:`MAX_IDLE_SECONDS`, less than the keep-alive timeouts that servers use by default
(gunicorn 2 s; Node.js, uvicorn and Apache httpd 5 s), so the pool does not send on a
connection that the IdP is closing at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .framing import HTTPError, RawResponse, ResponseReader
from .transport import authorization_field

__all__ = ["MAX_CONNECTIONS_PER_ORIGIN", "MAX_IDLE_SECONDS", "ConnectionPool", "HTTPError", "RawResponse"]

MAX_CONNECTIONS_PER_ORIGIN = 64
MAX_IDLE_SECONDS = 1.5

Origin = tuple[str, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reader: ResponseReader | None = None
        self._waiter: asyncio.Future[RawResponse] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, waiter = self._reader, self._waiter
        if reader is None or waiter is None:
            self.close()  # bytes between exchanges: the connection is out of step, drop it
            return
        try:
            response = reader.feed(data)
        except HTTPError as exc:
            self._fail(exc)
            return
        if response is not None:
            self._reader = None
            if not reader.reusable:
                self.close()
            if not waiter.done():
                waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reader, waiter = self._reader, self._waiter
        self._reader = None
        if reader is None or waiter is None or waiter.done():
            return
        try:
            waiter.set_result(reader.feed_eof())
        except HTTPError as error:
            waiter.set_exception(error)

    # -- exchanges -------------------------------------------------------------------------

    async def exchange(self, loop: asyncio.AbstractEventLoop, request: bytes, *, head: bool) -> RawResponse:
        """Write ``request`` once and wait for its response (or an error: never a resend)."""
        assert self.transport is not None and not self.closed
        self._reader = ResponseReader(head_request=head)
        self._waiter = waiter = loop.create_future()
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = self._reader = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def time_out(self) -> None:
        self._fail(TimeoutError("the peer did not answer in time"))

    def _fail(self, exc: Exception) -> None:
        self._reader = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()


@dataclass(eq=False)
class _OriginState:
    """The connections of one origin: ``opened`` counts idle, busy and connecting ones."""

    idle: list[_Connection] = field(default_factory=list)
    opened: int = 0
    # Requests waiting for a connection, first come first served. Each is granted either an
    # idle connection or (None) the right to open one; the grant is counted in ``opened``.
    waiters: deque[asyncio.Future[_Connection | None]] = field(default_factory=deque)


class ConnectionPool:
    """Kept-alive connections per origin (at most ``max_connections_per_origin``; more
    requests wait in line), for short request/response exchanges.

    Each exchange has one deadline, ``timeout`` after it starts, for waiting in line,
    connecting, writing and reading together. Exchanges on the wire are timed out by one
    watchdog that wakes every ``timeout / 4`` (at most 0.25 s) while any are pending, rather
    than by a timer per request: a timer costs more than the rest of the pool's work per
    request (3.8 µs for ``asyncio.timeout`` under uvloop). Such a request therefore fails
    between ``timeout`` and ``timeout + tick`` seconds.
    """

    def __init__(
        self,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_origin: int = MAX_CONNECTIONS_PER_ORIGIN,
    ) -> None:
        self.timeout = timeout
        self.max_connections_per_origin = max_connections_per_origin
        self._ssl = ssl_context
        self._origins: dict[Origin, _OriginState] = {}
        self._tick = min(0.25, timeout / 4)
        self._in_flight: dict[_Connection, float] = {}  # connection -> deadline (loop time)
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        authorization: str | None = None,
    ) -> RawResponse:
        """Send one request, once; the whole exchange is bounded by ``timeout`` (TimeoutError).

        ``headers`` are the same from request to request and encoded once per URL;
        ``authorization`` (a user's credential, :func:`~.transport.authorization_field`) is
        added to this request only and never kept. Every other failure, a connection closed
        before the answer included, is an :class:`HTTPError`.
        """
        origin, head = _request_head(method, url, tuple(headers))
        if authorization is not None:
            head += b"Authorization: %s\r\n" % authorization_field(authorization)
        if body or method not in ("GET", "HEAD"):
            request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        else:
            # RFC 9110 §8.6: no Content-Length on a request whose method expects no content.
            request = head + b"\r\n"
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._adopt(loop)
        deadline = loop.time() + self.timeout
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _OriginState()
        conn = await self._acquire(loop, origin, state, deadline)
        self._in_flight[conn] = deadline
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._tick, self._sweep, loop)
        try:
            return await conn.exchange(loop, request, head=method == "HEAD")
        except BaseException:
            conn.close()
            raise
        finally:
            self._in_flight.pop(conn, None)
            self._release(loop, state, conn)

    # -- connections -----------------------------------------------------------------------

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, state: _OriginState, deadline: float
    ) -> _Connection:
        """A live connection to ``origin`` on which nothing has been sent yet."""
        idle = state.idle
        while idle:
            conn = idle.pop()
            if conn.closed or loop.time() - conn.idle_since > MAX_IDLE_SECONDS:
                conn.close()
                state.opened -= 1
                continue
            return conn
        if state.opened < self.max_connections_per_origin and not state.waiters:
            state.opened += 1
            return await self._connect(loop, origin, state, deadline)
        granted = await self._wait_in_line(loop, state, deadline)
        if granted is not None and not granted.closed:
            return granted
        # The right to open a connection, or one the peer closed while it was handed over
        # (nothing was sent on it): either way its slot is ours, open a new one.
        return await self._connect(loop, origin, state, deadline)

    async def _wait_in_line(
        self, loop: asyncio.AbstractEventLoop, state: _OriginState, deadline: float
    ) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        state.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted just as the deadline passed: pass the grant on to the next in line.
                granted = waiter.result()
                if granted is None:
                    self._free_slot(state)
                else:
                    self._release(loop, state, granted)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    state.waiters.remove(waiter)
            raise

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, state: _OriginState, deadline: float
    ) -> _Connection:
        """Open a connection for a slot already counted in ``state.opened``."""
        scheme, host, port = origin
        ssl_context = (self._ssl or _default_ssl_context()) if scheme == "https" else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
                )
        except BaseException as exc:
            self._free_slot(state)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):  # ssl.SSLError too
                raise HTTPError(f"cannot connect: {type(exc).__name__}") from exc
            raise
        if conn.closed:  # accepted and closed at once: nothing was sent, the slot is free
            self._free_slot(state)
            raise HTTPError("the peer closed the connection at once")
        return conn

    def _release(self, loop: asyncio.AbstractEventLoop, state: _OriginState, conn: _Connection) -> None:
        """Back from an exchange: to the next in line, to the idle list, or closed."""
        if conn.closed:
            self._free_slot(state)
            return
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = loop.time()
        state.idle.append(conn)

    def _free_slot(self, state: _OriginState) -> None:
        state.opened -= 1
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                state.opened += 1
                waiter.set_result(None)
                return

    # -- deadlines -------------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new event loop (tests, a server restarted in one process): the
        previous loop's connections, waiters and watchdog belong to it and are forgotten."""
        self._loop = loop
        self._origins.clear()
        self._in_flight.clear()
        self._watchdog = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        now = loop.time()
        for conn, deadline in list(self._in_flight.items()):
            if deadline <= now:
                del self._in_flight[conn]
                conn.time_out()
        if self._in_flight:
            self._watchdog = loop.call_later(self._tick, self._sweep, loop)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for state in self._origins.values():
            for conn in state.idle:
                conn.close()
            for waiter in state.waiters:
                if not waiter.done():
                    waiter.set_exception(HTTPError("the connection pool was closed"))
        self._origins.clear()


@functools.lru_cache(maxsize=64)  # the shim sends the same few requests to its IdP
def _request_head(method: str, url: str, headers: tuple[tuple[str, str], ...]) -> tuple[Origin, bytes]:
    """The origin, and the request line and header fields but Content-Length, encoded (RFC 9112
    §3, §5); computed once per URL and header set."""
    if not url.isascii():  # RFC 3986 §2: a URI is ASCII; the discovery document may say otherwise
        raise HTTPError("URL is not ASCII")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range, an IP literal left open (RFC 3986 §3.2)
        raise HTTPError(f"unusable URL ({exc})") from None
    if "@" in parts.netloc:  # RFC 9110 §4.2.4: userinfo is an error; Host is host and port only
        raise HTTPError("URL carries userinfo")  # (checked first: the message below names the URL)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(f"unsupported URL {url!r}")
    if any(ch in url for ch in "\r\n \t"):
        raise HTTPError("URL contains whitespace")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(ch in f"{name}{value}" for name, value in headers for ch in "\r\n"):
        raise HTTPError("header field contains a line break")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{name}: {value}" for name, value in headers)]
    return (parts.scheme, parts.hostname, port), ("\r\n".join(lines) + "\r\n").encode("latin-1")


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """One context for every pool, built on first use: it verifies certificates and host names."""
    return ssl.create_default_context()

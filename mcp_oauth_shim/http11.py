"""A lean HTTP/1.1 keep-alive client for the one hot call the shim makes: POSTs to the IdP.

Every ``/oauth/token`` request is proxied to the IdP, so the client's cost per request is the
shim's cost per login and refresh. Measured in bench/ (``token proxy on ...`` rows, same run,
a local stub IdP): httpx reached 0.10x of a direct call at c=1 and 0.01x at c=16, httpx2
0.16x / 0.04x, aiohttp 0.31x / 0.21x, a plain keep-alive socket pool 0.47x / 0.54x. This module
is that pool: RFC 9112 message framing (Content-Length, chunked, read-until-close), TLS with
certificate and host name verification from :mod:`ssl`, bounded sizes and time, and nothing
else (no redirects, no proxies, no cookies, no compression). Discovery, JWKS and metadata
documents stay on httpx; so does everything when an ``http_client`` is passed to the shim.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_IDLE_PER_ORIGIN = 32


class HTTPError(Exception):
    """The peer could not be reached or answered something that is not HTTP/1.1."""


class ReusedConnectionClosed(HTTPError):
    """A kept-alive connection was closed by the peer before it answered: safe to retry."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._received_any = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            if self._waiter is None:
                self._fail(HTTPError("unsolicited data"))  # nothing may arrive between requests
            return
        try:
            response = self._parse(final=False)
        except HTTPError as exc:
            self._fail(exc)
            return
        if response is not None:
            self._waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if not self._received_any and self.reused:
            waiter.set_exception(ReusedConnectionClosed("idle connection closed by the peer"))
            return
        try:
            response = self._parse(final=True)
        except HTTPError as error:
            waiter.set_exception(error)
            return
        if response is None:
            waiter.set_exception(HTTPError("connection closed before the response was complete"))
        else:
            waiter.set_result(response)

    # -- requests --------------------------------------------------------------------------

    async def send(self, request: bytes) -> RawResponse:
        assert self.transport is not None
        self._buffer.clear()
        self._received_any = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def time_out(self) -> None:
        self._fail(TimeoutError("the peer did not answer in time"))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    # -- RFC 9112 framing ------------------------------------------------------------------

    def _parse(self, *, final: bool) -> RawResponse | None:
        """A complete response from the buffer, or None while more bytes are needed."""
        while True:
            end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES + 4)
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise HTTPError("response headers too large")
                return None
            status, headers, keep_alive = _parse_head(bytes(self._buffer[:end]))
            if 100 <= status < 200:  # interim responses (RFC 9110 §15.2): skip them
                del self._buffer[: end + 4]
                continue
            break
        start = end + 4
        body: bytes | None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, consumed = _dechunk(self._buffer, start)
            if body is None:
                return None
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HTTPError("malformed Content-Length")
            if length < 0 or length > MAX_BODY_BYTES:
                raise HTTPError("response body too large")
            if len(self._buffer) - start < length:
                return None
            body, consumed = bytes(self._buffer[start : start + length]), start + length
        else:
            # No framing: the body runs until the peer closes (RFC 9112 §6.3, rule 8).
            if len(self._buffer) - start > MAX_BODY_BYTES:
                raise HTTPError("response body too large")
            if not final:
                return None
            body, consumed, keep_alive = bytes(self._buffer[start:]), len(self._buffer), False
        if consumed != len(self._buffer) or not keep_alive:
            self.close()  # trailing bytes or "Connection: close": never reuse this connection
        return RawResponse(status, headers, body)


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HTTPError("undecodable headers")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise HTTPError("not an HTTP/1.1 response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError("malformed response header")
        key = name.lower()
        value = value.strip()
        if key in headers:
            if key in ("content-length", "transfer-encoding"):
                raise HTTPError(f"repeated {key}")  # request smuggling territory: refuse
            headers[key] += ", " + value
        else:
            headers[key] = value
    connection = headers.get("connection", "").lower()
    keep_alive = parts[0] == "HTTP/1.1" and "close" not in connection
    return int(parts[1]), headers, keep_alive


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    """RFC 9112 §7.1 chunked body: (body, end offset), or (None, 0) while incomplete."""
    body = bytearray()
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None, 0
        size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HTTPError("malformed chunk size")
        if size < 0 or len(body) + size > MAX_BODY_BYTES:
            raise HTTPError("response body too large")
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            while trailer_end >= 0 and trailer_end != pos:  # skip trailer fields
                pos = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", pos)
            if trailer_end < 0:
                return None, 0
            return bytes(body), trailer_end + 2
        if len(buffer) < pos + size + 2:
            return None, 0
        body += buffer[pos : pos + size]
        if buffer[pos + size : pos + size + 2] != b"\r\n":
            raise HTTPError("malformed chunk")
        pos += size + 2


class ConnectionPool:
    """Kept-alive connections per origin, for short request/response exchanges.

    Exchanges in flight are timed out by one watchdog that wakes every ``timeout / 4`` (at
    most 0.25 s) while any are pending, rather than by a timer per request: a timer costs more
    than the rest of the pool's work per request (3.8 µs for ``asyncio.timeout`` under uvloop).
    A request therefore fails between ``timeout`` and ``timeout + tick`` seconds.
    """

    def __init__(self, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[tuple[str, str, int], bytes]] = {}
        self._tick = min(0.25, timeout / 4)
        self._in_flight: dict[_Connection, float] = {}  # connection -> deadline (loop time)
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> RawResponse:
        """Send one request; the whole exchange is bounded by ``timeout`` (TimeoutError)."""
        origin, head = self._head(method, url, tuple(headers))
        request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for _attempt in range(2):
            conn = await self._checkout(origin, deadline - loop.time())
            self._watch(loop, conn, deadline)
            try:
                response = await conn.send(request)
            except ReusedConnectionClosed:
                continue  # the request never reached the peer: a fresh connection is safe
            except BaseException:
                conn.close()
                raise
            finally:
                self._in_flight.pop(conn, None)
            self._checkin(origin, conn)
            return response
        raise HTTPError("the peer closed every connection before answering")

    def _watch(self, loop: asyncio.AbstractEventLoop, conn: _Connection, deadline: float) -> None:
        if self._watchdog_loop is not loop:  # first use, or a new event loop (tests)
            self._in_flight.clear()
            self._watchdog, self._watchdog_loop = None, loop
        self._in_flight[conn] = deadline
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._tick, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        now = loop.time()
        for conn, deadline in list(self._in_flight.items()):
            if deadline <= now:
                del self._in_flight[conn]
                conn.time_out()
        if self._in_flight:
            self._watchdog = loop.call_later(self._tick, self._sweep, loop)

    def _head(
        self, method: str, url: str, headers: tuple[tuple[str, str], ...]
    ) -> tuple[tuple[str, str, int], bytes]:
        """The origin, and the request line and header fields but Content-Length, encoded
        (once per URL and header set: the shim sends the same few to its IdP)."""
        key = (method, url, headers)
        cached = self._heads.get(key)
        if cached is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise HTTPError(f"unsupported URL {url!r}")
            if any(ch in url for ch in "\r\n \t"):
                raise HTTPError("URL contains whitespace")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if any(ch in f"{name}{value}" for name, value in headers for ch in "\r\n"):
                raise HTTPError("header field contains a line break")
            lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{name}: {value}" for name, value in headers)]
            cached = (parts.scheme, parts.hostname, port), ("\r\n".join(lines) + "\r\n").encode("latin-1")
            if len(self._heads) < 64:  # the IdP has a handful of endpoints
                self._heads[key] = cached
        return cached

    async def _checkout(self, origin: tuple[str, str, int], timeout: float) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        ssl_context = None
        if scheme == "https":
            ssl_context = self._ssl or _default_ssl_context()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
                )
        except TimeoutError:
            raise  # an OSError too, but the caller must see it as the timeout it is
        except (OSError, ssl.SSLError) as exc:
            raise HTTPError(f"cannot connect: {type(exc).__name__}") from exc
        return conn

    def _checkin(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        if conn.closed:
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
        else:
            idle.append(conn)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


_SSL_CONTEXT: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()  # verifies certificates and host names
    return _SSL_CONTEXT

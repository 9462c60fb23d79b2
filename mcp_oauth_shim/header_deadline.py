"""A deadline for the request head: a client that sends it too slowly gets 408 and is let go.

What uvicorn bounds and what it does not. After a response on a kept-alive connection it arms
a timer (``--timeout-keep-alive``, 5 s) that closes the connection if no byte of a next request
arrives; but the first byte of a request cancels that timer, and nothing replaces it until the
request line and header fields are complete. A fresh connection has no timer at all. So a
client that connects and sends nothing, or sends its head a byte at a time ("slowloris"), holds
a connection and its buffers for as long as it likes, and enough of them exhaust the server.
No ASGI middleware can help (:class:`~mcp_oauth_shim.body_deadline.BodyDeadlineMiddleware`
included): the app is called only once the head is complete.

:class:`HeaderDeadline` is mixed into uvicorn's HTTP/1.1 protocol class (the one for httptools
and the one for h11; ``uvicorn.Config(http=...)`` takes the class) and gives every request
head ``seconds``. The clock starts when the server is ready for a request: when the connection
is made, and on a kept-alive connection when the previous response is complete (a pipelined
head that arrived whole meanwhile is not waited for). It stops when the head is complete and
the app is called: it never runs while the app reads a body (the body deadline's business) or
sends a response, however long (an MCP event stream). When it runs out, the client gets
``408 Request Timeout`` (RFC 9110 §15.5.9) with ``Connection: close`` and a JSON
``invalid_request`` body (RFC 6749 §5.2), and the connection is closed the way RFC 9112 §9.6
asks: the write side first, then whatever the client still sends is read and dropped for at
most :data:`LINGER_SECONDS`, so that the 408 is not lost to a TCP reset. One INFO line is
logged, nothing more.

This is the only module that touches uvicorn's protocol internals: the hooks
``connection_made``, ``data_received``, ``on_response_complete`` (called by a request's
response cycle when its response is complete), ``connection_lost``, and the attributes
``transport``, ``cycle`` (the latest request's cycle, with ``response_complete``), ``loop``,
``client`` and ``server_state``. uvicorn 0.34 up to the newest 0.x have them, in both
implementations. :func:`protocol_with_header_deadline` refuses (:class:`HeaderDeadlineUnavailable`)
a uvicorn outside that range, one lacking a hook, or one whose automatic choice is another
protocol; ``serve`` then runs uvicorn's own protocol and says in its configuration report that
the header deadline is not enforced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "LINGER_SECONDS",
    "H11WithHeaderDeadline",
    "HeaderDeadline",
    "HeaderDeadlineUnavailable",
    "HttpToolsWithHeaderDeadline",
    "protocol_with_header_deadline",
]

logger = logging.getLogger(__name__)

#: Seconds a client has to send a request's line and header fields. MCP clients send a head of
#: a few hundred bytes in one write: 10 s is ample even over a slow mobile link, and a sixth of
#: what nginx allows (``client_header_timeout`` 60 s; Apache 20 s, rising to 40 s while data
#: arrives), so that a slowloris client holds each connection six times shorter.
DEFAULT_HEADER_TIMEOUT = 10.0

#: Seconds the connection stays half-closed after the 408, reading and dropping what the
#: client still sends (nginx's lingering close, with a shorter bound).
LINGER_SECONDS = 2.0

#: The uvicorn versions this module was built for, as the shim's dependencies allow them: 0.34
#: already has every hook used here, and the tests run it on the installed one.
SUPPORTED_UVICORN = ((0, 34), (1, 0))

#: What :class:`HeaderDeadline` overrides or calls on uvicorn's protocol class.
HOOKS = ("connection_made", "data_received", "on_response_complete", "connection_lost", "_unset_keepalive_if_required")

_TIMED_OUT = json.dumps(
    {"error": "invalid_request", "error_description": "The request header section did not arrive in time."}
).encode()
_TIMED_OUT_HEAD = (
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"cache-control: no-store\r\n\r\n" % len(_TIMED_OUT)
)


class HeaderDeadlineUnavailable(Exception):
    """The installed uvicorn is not one :class:`HeaderDeadline` can be mixed into; the message
    says why."""


class HeaderDeadline(asyncio.Protocol):
    """Mixed in before a uvicorn HTTP/1.1 protocol class: bounds the wait for each request head.

    ``seconds`` is a class attribute because uvicorn makes one protocol object per connection
    from the class alone; :meth:`with_seconds` makes the class for a given deadline.
    """

    seconds: ClassVar[float] = DEFAULT_HEADER_TIMEOUT

    # uvicorn's, as both of its HTTP/1.1 protocols name them (set in __init__/connection_made).
    transport: asyncio.Transport
    cycle: Any  # the latest request's RequestResponseCycle, None before the first head
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    server_state: Any

    _head_timer: asyncio.TimerHandle | None = None
    _timed_out = False

    @classmethod
    def with_seconds(cls, seconds: float) -> type[HeaderDeadline]:
        """This class with a deadline of ``seconds`` (a positive number)."""
        if not seconds > 0:
            raise ValueError("seconds must be a positive number")
        return cast("type[HeaderDeadline]", type(cls.__name__, (cls,), {"seconds": seconds}))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        if self._timed_out:
            return  # after the 408: read and dropped until the client closes or the linger ends
        super().data_received(data)
        if not self._waiting_for_head():
            self._stop_head_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self._waiting_for_head():
            self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        """No request is being answered (none yet, or the latest one's response is complete),
        and the connection is still ours and open: the server waits for a request head."""
        return (
            (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
            # A WebSocket upgrade hands the transport to another protocol object.
            and self.transport.get_protocol() is self
        )

    def _start_head_clock(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.seconds, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._waiting_for_head():
            # Closed meanwhile (uvicorn's keep-alive timer, a shutdown) with connection_lost
            # not delivered yet: nothing to answer.
            return
        self._timed_out = True
        self._unset_keepalive_if_required()  # type: ignore[attr-defined]
        where = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        logger.info("%s: no complete request head within %g s; answered 408 and closed the connection", where, self.seconds)
        # The server's own default headers (date, server), as uvicorn's 400 carries them.
        defaults = b"".join(b"%s: %s\r\n" % header for header in self.server_state.default_headers)
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n" + defaults + _TIMED_OUT_HEAD + _TIMED_OUT)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._head_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:  # TLS: no half-close
            self.transport.close()


class H11WithHeaderDeadline(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol (``--http h11``) with the header deadline."""


class HttpToolsWithHeaderDeadline(HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol (its automatic choice when httptools is installed, as the
    shim's dependencies make sure) with the header deadline."""


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def protocol_with_header_deadline(seconds: float) -> type[HeaderDeadline]:
    """The protocol class uvicorn would choose by itself (``http="auto"``) with a header
    deadline of ``seconds``; :class:`HeaderDeadlineUnavailable` when the installed uvicorn is
    not one it can be mixed into."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    lowest, beyond = SUPPORTED_UVICORN
    if not lowest <= _version(uvicorn.__version__) < beyond:
        raise HeaderDeadlineUnavailable(
            f"uvicorn {uvicorn.__version__} is not a version it was built for (0.34 up to 1.0)"
        )
    chosen = {HttpToolsProtocol: HttpToolsWithHeaderDeadline, H11Protocol: H11WithHeaderDeadline}.get(AutoHTTPProtocol)
    if chosen is None:
        raise HeaderDeadlineUnavailable(f"uvicorn chooses {AutoHTTPProtocol.__name__}, which it does not know")
    missing = [hook for hook in HOOKS if not callable(getattr(AutoHTTPProtocol, hook, None))]
    if missing:
        raise HeaderDeadlineUnavailable(f"uvicorn {uvicorn.__version__}'s {AutoHTTPProtocol.__name__} lacks {', '.join(missing)}")
    return chosen.with_seconds(seconds)

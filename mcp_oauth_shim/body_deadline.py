"""A deadline for the request body: a client that sends it too slowly gets 408 and is let go.

uvicorn bounds how long an idle keep-alive connection may stay open, but not how long a client
may take to send the body of a request it has started: one that announces ``Content-Length:
60000`` and sends a byte a minute holds its connection and a task for as long as it likes, and
enough of them exhaust the server (the "slow POST" attack). :class:`BodyDeadlineMiddleware`
gives the whole body ``seconds`` from the moment the request reaches the app. When the time is
up, the app sees ``http.disconnect`` (the shim's endpoints and the MCP proxy stop quietly on
it) and, unless it already answered, the client gets ``408 Request Timeout`` (RFC 9110
§15.5.9) with ``Connection: close`` and a JSON ``invalid_request`` body (RFC 6749 §5.2), in
place of whatever the app answers to the disconnect.

A request answered before its body was read (a 404, a ``GET`` with a body, a 401 before the
body) is answered with ``Connection: close``: the server would otherwise discard the rest of
the body for as long as the client sends it.

Only reads of the body are bounded: an app waiting for ``http.disconnect`` after the body (an
event stream) waits as long as it likes. A reverse proxy in front that buffers request bodies
(nginx's default) makes this a second line of defence.
"""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import json_error, oauth_error

__all__ = ["DEFAULT_BODY_TIMEOUT", "BodyDeadlineMiddleware"]

logger = logging.getLogger(__name__)

#: Seconds a client has to send a whole request body (nginx waits 60 s between two reads).
DEFAULT_BODY_TIMEOUT = 30.0


class _Exchange:
    """What one request's body reads and answer have done so far."""

    __slots__ = ("answered", "body_complete", "timed_out")

    def __init__(self) -> None:
        self.body_complete = False
        self.answered = False
        self.timed_out = False


def _announces_body(scope: Scope) -> bool:
    """Whether the request's head announces a body (RFC 9112 §6.3): a transfer coding, or a
    ``Content-Length`` other than 0."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class BodyDeadlineMiddleware:
    """Bounds the time an HTTP request's body may take to arrive to ``seconds``."""

    def __init__(self, app: ASGIApp, *, seconds: float = DEFAULT_BODY_TIMEOUT) -> None:
        if not seconds > 0:
            raise ValueError("seconds must be a positive number")
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds
        exchange = _Exchange()

        async def receive_in_time() -> Message:
            if exchange.timed_out:
                return {"type": "http.disconnect"}
            if exchange.body_complete:
                return await receive()
            with anyio.CancelScope(deadline=deadline) as waiting:
                message = await receive()
            if waiting.cancelled_caught:
                exchange.timed_out = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                exchange.body_complete = True
            return message

        async def send_tracked(message: Message) -> None:
            if exchange.timed_out and not exchange.answered:
                # The app's answer to the disconnect it was told of (FastAPI's 400 "error
                # parsing the body", Starlette's 500): the 408 below replaces it.
                return
            if message["type"] == "http.response.start":
                exchange.answered = True
                if not exchange.body_complete and _announces_body(scope):
                    # Answered before its body was read: the server would keep the connection
                    # and discard what follows, for as long as the client trickles it, beyond
                    # any deadline. Closing it after the answer is what RFC 9112 §9.6 allows.
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_tracked)
        except Exception:
            # An app that does not expect the disconnect raises on it: not a failure of the
            # server, and one record per slow client at WARNING or above would be a lever to
            # flood the logs; kept at DEBUG for whoever looks into it.
            if not exchange.timed_out:
                raise
            logger.debug("the app raised on the disconnect after the body deadline", exc_info=True)
        if exchange.timed_out and not exchange.answered:
            timed_out = oauth_error("invalid_request", "The request body did not arrive in time.", 408)
            await json_error(timed_out, headers={"Connection": "close"})(scope, receive, send)

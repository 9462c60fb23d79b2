"""``X-Request-ID``: one id per HTTP request, in every log record of it and in the answer.

:class:`RequestIdMiddleware` takes the id a proxy or client sent in ``X-Request-ID`` when it is
a plausible id (1 to 128 characters of letters, digits and ``-._:``), otherwise makes one,
puts it in :data:`~mcp_oauth_shim.log_context.request_id_var` for the duration of the request
(every log record then carries it, see :class:`~mcp_oauth_shim.log_context.LogContextFilter`),
and adds it to the response headers. An id that is not plausible is replaced, never echoed:
the header would otherwise carry whatever a client wants into logs and answers.

Ids made here are a random per-process prefix and a counter (``"3f9a0c1e5b7d-1a2b"``): unique
across replicas and restarts without a random draw per request. They are correlation ids, not
secrets.

A request whose app raises keeps its id in the context: the 500 and the traceback the server
then logs carry it. Put the middleware outermost (around the app, not in Starlette's
``middleware=``, which runs inside Starlette's error handler) and the 500 answers with the id
too, as ``serve`` does.

``skip``: paths (and everything below them) passed straight to the app. ``serve`` skips the
guarded MCP endpoint unless logs are JSON: there every request is a tool call on the hot path,
and the middleware's cost buys nothing when no log line prints the id: a context variable, a
wrapped ``send`` and a header took +5.9 µs per request around a trivial app, a skipped path
+1.0 µs (``bench/inproc_observe.py`` on a shared 2-core machine where the trivial app itself
took 1.4 µs: the absolute numbers are inflated, the ratio is the point).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .log_context import request_id_var

__all__ = ["MAX_REQUEST_ID_LENGTH", "REQUEST_ID_HEADER", "RequestIdMiddleware", "new_request_id"]

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,%d}" % MAX_REQUEST_ID_LENGTH)

_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


class RequestIdMiddleware:
    """ASGI middleware: a request id per HTTP request (see the module's description)."""

    def __init__(self, app: ASGIApp, *, skip: Iterable[str] = ()) -> None:
        self.app = app
        self.skip = frozenset(path.rstrip("/") or "/" for path in skip)
        self._skip_below = tuple(path.rstrip("/") + "/" for path in self.skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (self.skip and (path in self.skip or path.startswith(self._skip_below))):
            await self.app(scope, receive, send)
            return
        raw: bytes | None = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                raw = value
                break
        encoded = raw if raw is not None and _VALID.fullmatch(raw) else new_request_id().encode("ascii")
        outer = request_id_var.get()
        token = request_id_var.set(encoded.decode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The id the app may have set is replaced: one X-Request-ID, the logged one.
                headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, encoded))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # What comes after a failure is about this request: the 500 an outer error handler
            # sends (the access line the server logs for it) and the server's traceback, logged
            # in this request's context (an ASGI server runs each request in a task of its own,
            # with a copy of the context). So the id stays, unless this was a request made from
            # within another one (a bridge calling its app in process), whose id comes back.
            if outer is not None:
                request_id_var.reset(token)
            raise
        request_id_var.reset(token)

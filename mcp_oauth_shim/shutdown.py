"""What a request still in flight when the server stops is answered: 503, not a 500.

On SIGTERM uvicorn stops accepting connections and gives the requests in flight
``timeout_graceful_shutdown`` seconds (``serve --shutdown-timeout``) to finish; then it cancels
their tasks. A cancelled app raises ``CancelledError`` into uvicorn, which logs "Exception in
ASGI application" with a traceback at ERROR for each of them and, when nothing was answered
yet, sends ``500 Internal Server Error``: every deploy would log one traceback per open MCP
event stream, and tell clients waiting on a slow IdP that the server is broken.

:class:`ShutdownMiddleware` answers such a request ``503 Service Unavailable`` (RFC 9110
§15.6.4) with ``Retry-After: 1`` (§10.2.3) and ``Connection: close``, and a JSON
``temporarily_unavailable`` body (the code RFC 6749 §4.1.2.1 gives a server that cannot serve
for now): the client retries, on another replica behind a load balancer. A response already
started (an event stream) is ended with its last, empty body chunk, so the client sees the
stream end and reconnects. Each is one line at INFO, without a traceback.

uvicorn cancels a request's task only when that shutdown timeout passes: a client that goes
away is an ``http.disconnect`` message, not a cancellation. The middleware relies on that; it is
meant for uvicorn, as ``serve`` runs it.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import json_error, oauth_error

__all__ = ["ShutdownMiddleware"]

logger = logging.getLogger(__name__)


class ShutdownMiddleware:
    """Answers an HTTP request cancelled by the server's shutdown (see the module's description)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if finished:
                return  # answered in full before the cancellation reached it
            logger.info(
                "%s %s cancelled: the server is stopping and its shutdown timeout has passed",
                scope.get("method", ""),
                scope.get("path", ""),
            )
            try:
                if started:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    stopping = oauth_error("temporarily_unavailable", "The server is stopping; try again.", 503)
                    await json_error(stopping, headers={"Retry-After": "1", "Connection": "close"})(scope, receive, send)
            except OSError:  # the connection is already gone: nothing left to tell
                logger.debug("the stopping server could not answer %s", scope.get("path", ""), exc_info=True)

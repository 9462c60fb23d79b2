"""The client's side of the redirect: a loopback HTTP listener at the client's redirect URI
(RFC 8252 §7.3), as native MCP clients run one. It records the authorization response the
browser brings (RFC 6749 §4.1.2 `code`/`state`, §4.1.2.1 `error`, RFC 9207 `iss`) and shows
the user a "you can close this tab" page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.peers.browser import AuthorizationResponse
from tests.peers.servers import serve_asgi

CALLBACK_PATH = "/callback"
DONE_PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Signed in</title></head>"
    "<body><p>You can close this tab and return to the application.</p></body></html>"
)


class NoRedirectArrived(AssertionError):
    """The browser never reached the client's redirect URI."""


@dataclass
class RedirectReceiver:
    """What arrived at the redirect URI (the first request only, as a real client does)."""

    redirect_uri: str = ""
    _arrived: threading.Event = field(default_factory=threading.Event)
    _response: AuthorizationResponse | None = None

    async def _callback(self, request: Request) -> HTMLResponse:
        if not self._arrived.is_set():
            self._response = AuthorizationResponse.from_url(str(request.url))
            self._arrived.set()
        return HTMLResponse(DONE_PAGE, headers={"Cache-Control": "no-store"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route(CALLBACK_PATH, self._callback)])

    def wait(self, timeout_s: float) -> AuthorizationResponse:
        if not self._arrived.wait(timeout_s):
            raise NoRedirectArrived(f"nothing arrived at {self.redirect_uri} within {timeout_s}s")
        if self._response is None:
            raise NoRedirectArrived(f"{self.redirect_uri} stopped listening before the browser came back")
        return self._response

    def stop_waiting(self) -> None:
        """Release a client still waiting (the test is over): its wait fails at once."""
        self._arrived.set()

    @property
    def response(self) -> AuthorizationResponse | None:
        return self._response


@contextmanager
def receive_redirect() -> Iterator[RedirectReceiver]:
    receiver = RedirectReceiver()
    with serve_asgi(receiver.app()) as running:
        receiver.redirect_uri = running.url + CALLBACK_PATH
        try:
            yield receiver
        finally:
            receiver.stop_waiting()

"""A real MCP client in a background thread: the `mcp` SDK's OAuthClientProvider over
Streamable HTTP, with a loopback redirect URI.

Its redirect handler hands the authorization URL to the test (which opens it in Chromium, as
a desktop client opens the system browser); its callback handler waits for that browser to
arrive at the redirect URI. The thread keeps the test's own thread free for the synchronous
Playwright API.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import anyio
import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from mcp.types import CallToolResult

from tests.peers.clients import REQUEST_TIMEOUT_S, SESSION_TIMEOUT_S, MemoryStorage

from .redirect_receiver import RedirectReceiver

# How long the client waits for the person in the browser (a real client waits minutes).
LOGIN_TIMEOUT_S = 90.0


class AuthorizationRefused(RuntimeError):
    """The authorization response carried an error (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the authorization server answered error={error}")
        self.error = error


@dataclass
class McpClientRun:
    """One client session: log in (through the browser), then call `whoami`."""

    mcp_url: str
    receiver: RedirectReceiver
    client_name: str = "Browser test client"
    authorize_urls: queue.Queue[str] = field(default_factory=queue.Queue)
    result: CallToolResult | None = None
    failure: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> McpClientRun:
        self._thread = threading.Thread(target=self._run, name="mcp-client", daemon=True)
        self._thread.start()
        return self

    def next_authorize_url(self, timeout_s: float = 60.0) -> str:
        """The URL the client asks the user's browser to open."""
        try:
            return self.authorize_urls.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"the client opened no authorization URL within {timeout_s}s: {self.failure!r}") from None

    def finish(self, timeout_s: float = SESSION_TIMEOUT_S) -> CallToolResult:
        """Wait for the session to end; the tool result, or the client's error re-raised."""
        assert self._thread is not None, "start() first"
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the client session did not end within {timeout_s}s")
        if self.failure is not None:
            raise self.failure
        assert self.result is not None
        return self.result

    async def _open_browser(self, authorization_url: str) -> None:
        self.authorize_urls.put(authorization_url)

    async def _wait_for_redirect(self) -> AuthorizationCodeResult:
        response = await anyio.to_thread.run_sync(self.receiver.wait, LOGIN_TIMEOUT_S)
        if response.error is not None:
            raise AuthorizationRefused(response.error)
        assert response.code, "the redirect carried neither a code nor an error"
        return AuthorizationCodeResult(code=response.code, state=response.state, iss=response.iss)

    def _provider(self) -> OAuthClientProvider:
        return OAuthClientProvider(
            server_url=self.mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name=self.client_name,
                redirect_uris=[self.receiver.redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=MemoryStorage(),
            redirect_handler=self._open_browser,
            callback_handler=self._wait_for_redirect,
        )

    def _run(self) -> None:
        async def session() -> CallToolResult:
            with anyio.fail_after(SESSION_TIMEOUT_S):
                async with httpx2.AsyncClient(auth=self._provider(), timeout=REQUEST_TIMEOUT_S) as http:
                    async with Client(
                        streamable_http_client(self.mcp_url, http_client=http),
                        mode="legacy",
                        read_timeout_seconds=REQUEST_TIMEOUT_S,
                    ) as client:
                        return await client.call_tool("whoami")

        try:
            self.result = anyio.run(session)
        except BaseException as exc:  # handed to the test thread by finish()
            self.failure = exc

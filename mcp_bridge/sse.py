"""The legacy HTTP+SSE transport (MCP 2024-11-05 "Transports"), for clients that still use it.

`GET <path>` opens the event stream (its first event names the message endpoint);
`POST <path>/messages/?session_id=...` carries the client's messages, answered on the stream.
Both are the SDK's `SseServerTransport`; the bridge adds the same Host/Origin policy and the
same per-tool scope check (a 403 step-up challenge on the POST) as on Streamable HTTP.
Streamable HTTP (`mount_http`) is what current clients use; this exists for FastAPI-MCP's
`mount_sse` users.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcp_bridge.auth import send_insufficient_scope
from mcp_bridge.security import FOREIGN_HOST_BODY, HostOriginPolicy
from mcp_bridge.transport import DEFAULT_MAX_BODY_SIZE, ScopeGuard, _read_body, _replay
from mcp_oauth_shim import jsonsafe


class _Asgi:
    """An ASGI app object around a coroutine method (Starlette treats bare methods as endpoints)."""

    def __init__(self, handler: Callable[[Scope, Receive, Send], Any]) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)


class SSEEndpoint:
    """Two ASGI apps, `stream` (GET) and `messages` (POST), over one SDK `SseServerTransport`."""

    def __init__(
        self,
        *,
        server: Callable[[], Any],
        messages_path: str,
        policy: HostOriginPolicy,
        guard: ScopeGuard | None,
    ) -> None:
        self._server = server
        self._messages_path = messages_path
        self._policy = policy
        self._guard = guard
        self._transport: Any = None
        self.stream_app = _Asgi(self.stream)
        self.messages_app = _Asgi(self.messages)

    def _sdk_transport(self) -> Any:
        if self._transport is None:
            from mcp.server.sse import SseServerTransport

            self._transport = SseServerTransport(self._messages_path, security_settings=self._policy.to_sdk())
        return self._transport

    def _foreign_host(self, scope: Scope) -> Response | None:
        """The 421 that names the setting (the SDK's own names none), for a Host not allowed."""
        headers = Headers(scope=scope)
        if self._policy.refusal(headers.get("host"), headers.get("origin")) != 421:
            return None
        return Response(FOREIGN_HOST_BODY, status_code=421, media_type="text/plain")

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if (refused := self._foreign_host(scope)) is not None:
            await refused(scope, receive, send)
            return
        if scope["method"] != "GET":
            await Response(status_code=405, headers={"Allow": "GET"})(scope, receive, send)
            return
        transport = self._sdk_transport()
        server = self._server()
        try:
            async with transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
        except ValueError:
            return  # refused by the transport's Host/Origin check; it has answered already

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if (refused := self._foreign_host(scope)) is not None:
            await refused(scope, receive, send)
            return
        transport = self._sdk_transport()
        if scope["method"] != "POST" or self._guard is None:
            await transport.handle_post_message(scope, receive, send)
            return
        body, trailing = await _read_body(receive, DEFAULT_MAX_BODY_SIZE)
        if body is None:
            await Response("Request body too large", status_code=413)(scope, receive, send)
            return
        try:
            message = jsonsafe.loads(body) if body else None
        except ValueError:
            message = None
        denied = self._guard.denial(message, scope) if message is not None else None
        if denied is not None:
            tool, needed, granted = denied
            await send_insufficient_scope(
                send, needed=needed, granted=granted, resource_metadata=self._guard.resource_metadata, tool=tool
            )
            return
        await transport.handle_post_message(scope, _replay(body, trailing, receive), send)

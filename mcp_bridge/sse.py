"""The legacy HTTP+SSE transport (MCP 2024-11-05 "Transports"), for clients that still use it.

`GET <path>` opens the event stream (its first event names the message endpoint);
`POST <path>/messages/?session_id=...` carries the client's messages, answered on the stream.
Both are the SDK's `SseServerTransport`; the bridge adds the same Host/Origin policy and the
same per-tool scope check (a 403 step-up challenge on the POST) as on Streamable HTTP.
Streamable HTTP (`mount_http`) is what current clients use; this exists for FastAPI-MCP's
`mount_sse` users.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcp_bridge.asgi_io import read_message, send_plain
from mcp_bridge.auth import ScopeGuard
from mcp_bridge.security import FOREIGN_HOST_BODY, HostOriginPolicy
from mcp_bridge.transport import DEFAULT_MAX_BODY_SIZE

if TYPE_CHECKING:
    from mcp.server.lowlevel.server import Server
    from mcp.server.sse import SseServerTransport


@dataclass(eq=False, kw_only=True)
class SSEEndpoint:
    """The ASGI app of both paths (the routes let GET through to one, POST to the other) over
    one SDK `SseServerTransport`."""

    server: Callable[[], Server]
    messages_path: str
    policy: HostOriginPolicy
    guard: ScopeGuard | None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """For one lifespan of the host app (the bridge runs every endpoint the same way)."""
        try:
            yield
        finally:
            self.__dict__.pop("_sdk_transport", None)  # streams of this lifespan are over; a new run starts afresh

    @functools.cached_property
    def _sdk_transport(self) -> SseServerTransport:
        from mcp.server.sse import SseServerTransport

        return SseServerTransport(self.messages_path, security_settings=self.policy.to_sdk())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = Headers(scope=scope)
        if self.policy.refusal(headers.get("host"), headers.get("origin")) == 421:
            await send_plain(send, 421, FOREIGN_HOST_BODY)  # names the setting (the SDK's own answer does not)
        elif scope["method"] == "POST":
            await self._message(scope, receive, send)
        else:
            await self._stream(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await Response(status_code=405, headers={"Allow": "GET"})(scope, receive, send)
            return
        transport = self._sdk_transport
        server = self.server()
        try:
            async with transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
        except ValueError:
            return  # refused by the transport's Host/Origin check; it has answered already

    async def _message(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = self._sdk_transport
        if self.guard is None:
            await transport.handle_post_message(scope, receive, send)
            return
        read = await read_message(receive, send, DEFAULT_MAX_BODY_SIZE)
        if read is None:
            return
        message, replayed = read
        if message is not None and await self.guard.refuse(message, scope, send):
            return
        await transport.handle_post_message(scope, replayed, send)

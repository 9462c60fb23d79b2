"""The legacy HTTP+SSE transport (MCP 2024-11-05 "Transports"), for clients that still use it.

`GET <path>` opens the event stream (its first event names the message endpoint);
`POST <path>/messages/?session_id=...` carries the client's messages, answered on the stream.
Both are the SDK's `SseServerTransport`; the bridge adds the same Host/Origin policy and the
same per-tool scope check (a 403 step-up challenge on the POST) as on Streamable HTTP.
Streamable HTTP (`mount_http`) is what current clients use; this exists for FastAPI-MCP's
`mount_sse` users.

Each stream is a session (a long-lived connection and a task running the MCP server), and the
SDK's transport opens one for every `GET` it is given. The endpoint bounds them as `mount_http`
bounds its sessions, with the same answers: a verified caller holding `max_sessions_per_caller`
streams gets 429 for another (`sessions.caller_at_limit`: the user, whichever client), and
once `max_sessions` streams are open anyone gets 503. A stream counts from the check that
admitted it until it ends (the client disconnected or the server stopped). A message for a
stream is only taken with the credential that opened it: the SDK answers another caller as if
the session did not exist (404), as the Streamable HTTP endpoint does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcp_bridge.asgi_io import read_message, send_json, send_plain
from mcp_bridge.auth import ScopeGuard
from mcp_bridge.security import FOREIGN_HOST_BODY, HostOriginPolicy
from mcp_bridge.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_CALLER,
    TOO_MANY_CALLER_SESSIONS,
    TOO_MANY_SESSIONS,
    caller_at_limit,
    requestor,
)
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
    # The streams one verified caller may hold open at once, and all callers together.
    max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER
    max_sessions: int = DEFAULT_MAX_SESSIONS
    # The owner (`requestor`, None without auth) of every stream open now.
    _owners: list[Any] = field(default_factory=list, init=False)

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
        owner = requestor(scope)
        if caller_at_limit(owner, self.max_sessions_per_caller, self._owners):
            await send_json(send, 429, TOO_MANY_CALLER_SESSIONS)
            return
        if len(self._owners) >= self.max_sessions:
            await send_json(send, 503, TOO_MANY_SESSIONS)
            return
        # Counted from the check on, with no await between: streams requested at once would
        # each pass the count before any of them opened.
        self._owners.append(owner)
        transport = self._sdk_transport
        server = self.server()
        try:
            async with transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
        except ValueError:
            return  # refused by the transport's Host/Origin check; it has answered already
        finally:
            self._owners.remove(owner)

    async def _message(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = self._sdk_transport
        if self.guard is None:
            await transport.handle_post_message(scope, receive, send)
            return
        read = await read_message(receive, send, DEFAULT_MAX_BODY_SIZE)
        if read is None:
            return
        message, replayed = read
        refused = self.guard.refusal(message, scope) if message is not None else None
        if refused is not None:
            await refused(scope, replayed, send)
            return
        await transport.handle_post_message(scope, replayed, send)

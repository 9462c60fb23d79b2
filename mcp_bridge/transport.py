"""The `/mcp` endpoint: Streamable HTTP (MCP 2025-11-25 "Transports") on the official SDK.

`StreamableHTTPSessionManager` serves every request shape - initialize, notifications, the
`GET` stream (its headers go out at once: `EventSourceResponse`), `DELETE`, sessions,
resumption, the 2026 per-request envelope. In front of it this endpoint adds what the SDK
cannot know:

* the per-tool scope check, answered at the HTTP level with a 403 step-up challenge before
  the SDK sees the request (a JSON-RPC error inside a 200 would not start a step-up);
* a fast path for the two hot methods. A single `tools/list` or `tools/call` request of a
  handshake-era revision, for a live session (or in stateless mode), that passes the same
  Host/Origin/Content-Type/Accept checks, is answered here with one `application/json`
  response (which the transport spec allows for any request): the pre-encoded tool list, or
  the in-process call. No per-request task, stream or session object is created. Everything
  else - and anything this endpoint is unsure about - goes to the SDK unchanged.

The SDK is loaded and its session manager started inside a task group owned by the host app's
lifespan: in stateful mode right away in the background (the first client's `initialize` needs
it), in stateless mode on the first request that needs it (importing the `mcp` package costs
more start-up time and memory than the whole tool table, and `tools/list` never needs it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.types import Message, Receive, Scope, Send

from mcp_bridge.auth import granted_scopes, send_insufficient_scope
from mcp_bridge.registry import ToolRegistry
from mcp_bridge.security import HostOriginPolicy, accepts

logger = logging.getLogger(__name__)

ToolCaller = Callable[[str, Any, Scope], Awaitable[dict[str, Any]]]

_SESSION_HEADER = b"mcp-session-id"
_VERSION_HEADER = b"mcp-protocol-version"
# The revisions reached through the initialize handshake (mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS);
# anything else (the 2026-07-28 per-request envelope) is the SDK's to serve.
_HANDSHAKE_VERSIONS = frozenset({b"2024-11-05", b"2025-03-26", b"2025-06-18", b"2025-11-25"})
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024


class _NotRunning(Exception):
    pass


class ScopeGuard:
    """Finds the first `tools/call` in a message whose tool needs scopes the caller lacks."""

    def __init__(self, registry: Callable[[], ToolRegistry], resource_metadata: str | None) -> None:
        self._registry = registry
        self.resource_metadata = resource_metadata

    def denial(self, message: Any, scope: Scope) -> tuple[str, set[str], frozenset[str]] | None:
        """(tool, missing scopes, granted scopes) for a refused call, else None."""
        granted = granted_scopes(scope)
        if granted is None:
            return None
        registry = self._registry()
        for item in message if isinstance(message, list) else (message,):
            if not isinstance(item, dict) or item.get("method") != "tools/call":
                continue
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            spec = registry.by_name.get(name) if isinstance(name, str) else None
            if spec is not None and not spec.scopes <= granted:
                return spec.name, set(spec.scopes - granted), granted
        return None


class MCPEndpoint:
    """ASGI app for one mounted MCP path; its session manager lives in the host's lifespan."""

    def __init__(
        self,
        *,
        server: Callable[[], Any],
        registry: Callable[[], ToolRegistry],
        call: ToolCaller,
        stateless: bool,
        json_response: bool,
        policy: HostOriginPolicy,
        guard: ScopeGuard | None,
        fast_path: bool = True,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._server = server
        self._registry = registry
        self._call = call
        self.stateless = stateless
        self.json_response = json_response
        self.policy = policy
        self.guard = guard
        self.fast_path = fast_path
        self.max_body_size = max_body_size
        self.manager: Any = None  # the SDK's StreamableHTTPSessionManager, once started
        self._task_group: TaskGroup | None = None
        self._stopping: anyio.Event | None = None
        self._starting: anyio.Lock | None = None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """For one lifespan of the host app: own the task group the session manager runs in."""
        async with anyio.create_task_group() as task_group:
            self._task_group, self._stopping, self._starting = task_group, anyio.Event(), anyio.Lock()
            if not self.stateless:
                # A stateful client's first request (initialize) needs the SDK anyway: load it
                # while the server finishes starting instead of when that client is waiting.
                task_group.start_soon(self._preload)
            try:
                yield
            finally:
                self._stopping.set()
                self._task_group = None

    async def _ensure_manager(self) -> Any:
        if self.manager is not None:
            return self.manager
        if self._starting is None or self._task_group is None:
            raise _NotRunning
        async with self._starting:
            if self.manager is None:
                if self._task_group is None:
                    raise _NotRunning
                await self._task_group.start(self._run_manager)
        return self.manager

    async def _run_manager(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # The SDK's import takes a while: do it off the event loop, which keeps serving meanwhile.
        module = await anyio.to_thread.run_sync(importlib.import_module, "mcp.server.streamable_http_manager")
        manager = module.StreamableHTTPSessionManager(
            app=self._server(),
            json_response=self.json_response,
            stateless=self.stateless,
            security_settings=self.policy.to_sdk(),
            max_request_body_size=self.max_body_size,
        )
        assert self._stopping is not None
        stopping = self._stopping
        async with manager.run():
            self.manager = manager
            task_status.started()
            try:
                await stopping.wait()
            finally:
                self.manager = None

    async def _preload(self) -> None:
        try:
            await self._ensure_manager()
        except _NotRunning:
            pass  # the lifespan ended first
        except Exception:
            logger.exception("could not start the MCP session manager; retrying on the first request")

    async def _to_sdk(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            manager = await self._ensure_manager()
        except _NotRunning:
            await _plain(send, 503, b"MCP endpoint not running: serve the app with its lifespan enabled")
            return
        await manager.handle_request(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await self._to_sdk(scope, receive, send)
            return

        body, trailing = await _read_body(receive, self.max_body_size)
        if body is None:
            await _plain(send, 413, b"Request body too large")
            return
        replay = _replay(body, trailing, receive)
        try:
            message = json.loads(body) if body else None
        except ValueError:
            message = None

        if self.guard is not None and message is not None:
            denied = self.guard.denial(message, scope)
            if denied is not None:
                tool, needed, granted = denied
                await send_insufficient_scope(
                    send, needed=needed, granted=granted, resource_metadata=self.guard.resource_metadata, tool=tool
                )
                return

        if self.fast_path and isinstance(message, dict) and await self._try_fast(message, scope, send):
            return
        await self._to_sdk(scope, replay, send)

    async def _try_fast(self, message: dict[str, Any], scope: Scope, send: Send) -> bool:
        method = message.get("method")
        if method not in ("tools/call", "tools/list") or message.get("jsonrpc") != "2.0":
            return False
        request_id = message.get("id")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            return False
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            return False
        version = session = host = origin = None
        accept = content_type = b""
        for key, value in scope["headers"]:
            if key == _VERSION_HEADER:
                version = value
            elif key == _SESSION_HEADER:
                session = value.decode("latin-1")
            elif key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"accept":
                accept = value
            elif key == b"content-type":
                content_type = value
        if version is not None and version not in _HANDSHAKE_VERSIONS:
            return False
        # Anything the SDK would refuse is left to the SDK, so refusals look the same either way.
        if self.policy.refusal(host, origin) is not None:
            return False
        if not content_type.split(b";", 1)[0].strip().lower() == b"application/json":
            return False
        has_json, has_sse = accepts(accept.decode("latin-1"))
        if not has_json or (not self.json_response and not has_sse):
            return False
        if not self.stateless and not _session_is_live(self.manager, session, scope):
            return False

        if method == "tools/list":
            if params and params.get("cursor") is not None:
                return False
            result = self._registry().list_result_bytes(granted_scopes(scope))
        else:
            name = (params or {}).get("name")
            arguments = (params or {}).get("arguments")
            if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
                return False
            result = json.dumps(await self._call(name, arguments, scope), separators=(",", ":")).encode()
        payload = b'{"jsonrpc":"2.0","id":' + json.dumps(request_id).encode() + b',"result":' + result + b"}"
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if session is not None and not self.stateless:
            headers.append((_SESSION_HEADER, session.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return True


@functools.cache
def _sdk_auth() -> tuple[type, Callable[[Any], Any]]:
    # Loaded once the SDK runs (stateful fast path only): the SDK's own owner comparison.
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context

    return AuthenticatedUser, authorization_context


def _is_authenticated(user: Any) -> bool:
    return isinstance(user, _sdk_auth()[0])


def _session_is_live(manager: Any, session: str | None, scope: Scope) -> bool:
    """Whether the SDK would serve this session id for this caller; refreshes its idle clock.

    Reads the manager's session table; if a future SDK renames it, the answer is "no" and
    every request simply takes the SDK path.
    """
    if session is None or manager is None:
        return False
    transports = getattr(manager, "_server_instances", None)
    owners = getattr(manager, "_session_owners", None)
    if not isinstance(transports, dict) or not isinstance(owners, dict):
        return False
    transport = transports.get(session)
    if transport is None or transport.is_terminated:
        return False
    owner = owners.get(session)
    user = scope.get("user")
    if owner is None:
        if user is not None and _is_authenticated(user):
            return False
    elif not _is_authenticated(user) or _sdk_auth()[1](user) != owner:
        return False
    idle_scope = getattr(transport, "idle_scope", None)
    timeout = getattr(transport, "_idle_timeout", None)
    if idle_scope is not None and timeout is not None:
        if idle_scope.cancel_called:
            return False
        if not getattr(transport, "_requests_in_flight", 0) and math.isfinite(idle_scope.deadline):
            idle_scope.deadline = anyio.current_time() + timeout
    return True


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Message | None]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, trailing: Message | None, receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if trailing is not None:
        pending.append(trailing)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": text})

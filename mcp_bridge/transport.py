"""The `/mcp` endpoint: Streamable HTTP (MCP 2025-11-25 "Transports") on the official SDK.

`StreamableHTTPSessionManager` serves every request shape - initialize, notifications, the
`GET` stream (its headers go out at once: `EventSourceResponse`), `DELETE`, sessions,
resumption, the 2026 per-request envelope. In front of it this endpoint adds what the SDK
cannot know:

* the per-tool scope check, answered at the HTTP level with a 403 step-up challenge before
  the SDK sees the request (a JSON-RPC error inside a 200 would not start a step-up);
* a fast path for the requests a tool client makes all the time. A single `initialize`,
  `notifications/initialized`, `ping`, `tools/list` or `tools/call` of a handshake-era
  revision, that passes the same Host/Origin/Content-Type/Accept checks as the SDK's, is
  answered here with one `application/json` response (which the transport spec allows for
  any request): the pre-encoded handshake or tool list, or the in-process call. No
  per-request task, stream or session object is created. In stateful mode the endpoint issues
  the session itself (`sessions.py`) and hands it to the SDK on its first request that needs
  the SDK. Everything else - and anything this endpoint is unsure about - goes to the SDK.

The SDK is loaded, and its session manager started, on the first request that needs it, inside
a task group owned by the host app's lifespan: importing the `mcp` package costs more start-up
time and memory than the whole tool table, and a client that initializes, lists and calls
tools never needs it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.types import Message, Receive, Scope, Send

from mcp_bridge.auth import granted_scopes, send_insufficient_scope
from mcp_bridge.handshake import (
    HANDSHAKE_VERSIONS,
    InitializeAnswer,
    initialize_params_are_plain,
    negotiate,
)
from mcp_bridge.registry import ToolRegistry
from mcp_bridge.security import FOREIGN_HOST_BODY, HostOriginPolicy, accepts
from mcp_bridge.sessions import SessionTable, adopt, requestor
from mcp_oauth_shim import jsonsafe

logger = logging.getLogger(__name__)

# (tool name, arguments, the request's scope) -> the JSON bytes of a `CallToolResult`.
EncodedToolCaller = Callable[[str, Any, Scope], Awaitable[bytes]]

_SESSION_HEADER = b"mcp-session-id"
_VERSION_HEADER = b"mcp-protocol-version"
# Anything else (the 2026-07-28 per-request envelope) is the SDK's to serve.
_HANDSHAKE_VERSIONS = frozenset(v.encode() for v in HANDSHAKE_VERSIONS)
_FAST_METHODS = frozenset({"tools/call", "tools/list", "ping", "initialize", "notifications/initialized"})
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
# The SDK's answers without a request id (mcp.server.streamable_http_manager._error_response).
_SESSION_NOT_FOUND = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
_TOO_MANY_SESSIONS = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Too many open sessions"}}'
_MAX_CHECKED = 256
# How often a fast-path request pushes back the idle deadline of an SDK session.
_IDLE_REFRESH_EVERY = 1.0


class _NotRunning(Exception):
    """The session manager is not running (the app's lifespan did not start it)."""


class ScopeGuard:
    """Finds the first `tools/call` in a message whose tool needs scopes the caller lacks."""

    def __init__(self, registry: Callable[[], ToolRegistry], resource_metadata: str | None) -> None:
        self._registry = registry
        self.resource_metadata = resource_metadata

    def denial(self, message: Any, scope: Scope) -> tuple[str, set[str], frozenset[str]] | None:
        """(tool, missing scopes, granted scopes) for a refused call, else None."""
        registry = self._registry()
        if not registry.scoped:
            return None
        granted = granted_scopes(scope)
        if granted is None:
            return None
        for item in message if isinstance(message, list) else (message,):
            if not isinstance(item, dict) or item.get("method") != "tools/call":
                continue
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            spec = registry.by_name.get(name) if isinstance(name, str) else None
            if spec is not None and not spec.scopes <= granted:
                return spec.name, set(spec.scopes - granted), granted
        return None


class _Headers:
    """The request headers the endpoint decides on, read in one pass."""

    __slots__ = ("accept", "content_type", "host", "origin", "session", "version")

    def __init__(self, scope: Scope) -> None:
        self.version: bytes | None = None
        self.session: str | None = None
        self.host: str | None = None
        self.origin: str | None = None
        self.accept = self.content_type = b""
        for key, value in scope["headers"]:
            if key == _VERSION_HEADER:
                self.version = value
            elif key == _SESSION_HEADER:
                self.session = value.decode("latin-1")
            elif key == b"host":
                self.host = value.decode("latin-1")
            elif key == b"origin":
                self.origin = value.decode("latin-1")
            elif key == b"accept":
                self.accept = value
            elif key == b"content-type":
                self.content_type = value

    @property
    def handshake_era(self) -> bool:
        return self.version is None or self.version in _HANDSHAKE_VERSIONS


class MCPEndpoint:
    """ASGI app for one mounted MCP path; its session manager lives in the host's lifespan."""

    def __init__(
        self,
        *,
        server: Callable[[], Any],
        registry: Callable[[], ToolRegistry],
        call: EncodedToolCaller,
        stateless: bool,
        json_response: bool,
        policy: HostOriginPolicy,
        guard: ScopeGuard | None,
        fast_path: bool = True,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        initialize: Callable[[], InitializeAnswer | None] = lambda: None,
    ) -> None:
        self._server = server
        self._registry = registry
        self._call = call
        self._initialize = initialize
        self.stateless = stateless
        self.json_response = json_response
        self.policy = policy
        self.guard = guard
        self.fast_path = fast_path
        self.max_body_size = max_body_size
        self.manager: Any = None  # the SDK's StreamableHTTPSessionManager, once started
        self.sessions = SessionTable()  # sessions issued here and not yet handed to the SDK
        self._issue_sessions = True  # off if the SDK ever refuses to adopt one
        self._idle_refreshed: dict[str, float] = {}
        self._checked: dict[tuple[str | None, str | None, bytes, bytes], bool] = {}
        self._task_group: TaskGroup | None = None
        self._stopping: anyio.Event | None = None
        self._starting: anyio.Lock | None = None
        self._adopting: anyio.Lock | None = None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """For one lifespan of the host app: own the task group the session manager runs in."""
        async with anyio.create_task_group() as task_group:
            self._task_group, self._stopping = task_group, anyio.Event()
            self._starting, self._adopting = anyio.Lock(), anyio.Lock()
            try:
                yield
            finally:
                self._stopping.set()
                self._task_group = None
                self.sessions.clear()
                self._idle_refreshed.clear()

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

    async def _to_sdk(self, scope: Scope, receive: Receive, send: Send, headers: _Headers) -> None:
        if not self.stateless and headers.session is not None and headers.handshake_era:
            # A session this endpoint issued becomes the SDK's before the SDK sees its request.
            opened = self.sessions.find(headers.session, requestor(scope))
            if opened is not None:
                if not await self._adopt(opened, scope):
                    await _json(send, 404, _SESSION_NOT_FOUND)
                    return
            elif self.manager is None:
                # No SDK session can exist before the SDK runs: unknown, as the SDK would say.
                await _json(send, 404, _SESSION_NOT_FOUND)
                return
        try:
            manager = await self._ensure_manager()
        except _NotRunning:
            await _plain(send, 503, b"MCP endpoint not running: serve the app with its lifespan enabled")
            return
        if self.policy.refusal(headers.host, headers.origin) == 421:
            await _plain(send, 421, FOREIGN_HOST_BODY)  # the SDK's own answer names no setting
            return
        await manager.handle_request(scope, receive, send)

    async def _adopt(self, opened: Any, scope: Scope) -> bool:
        try:
            manager = await self._ensure_manager()
        except _NotRunning:
            return False
        assert self._adopting is not None
        async with self._adopting:
            if opened.id not in self.sessions:  # a concurrent request adopted it meanwhile
                return opened.id in getattr(manager, "_server_instances", {})
            try:
                adopted = await adopt(manager, opened, scope)
            except Exception:
                logger.exception("the MCP SDK did not take over a session; sessions are left to the SDK from now on")
                self._issue_sessions = False
                adopted = False
            finally:
                self.sessions.discard(opened.id)
        return adopted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = _Headers(scope)
        if scope["method"] != "POST":
            if not (scope["method"] == "DELETE" and self.fast_path and await self._try_delete(scope, send, headers)):
                await self._to_sdk(scope, receive, send, headers)
            return

        body, trailing = await _read_body(receive, self.max_body_size)
        if body is None:
            await _plain(send, 413, b"Request body too large")
            return
        try:
            message = jsonsafe.loads(body) if body else None
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

        if self.fast_path and isinstance(message, dict) and await self._try_fast(message, scope, send, headers):
            return
        await self._to_sdk(scope, _replay(body, trailing, receive), send, headers)

    def _passes_sdk_checks(self, headers: _Headers) -> bool:
        """The SDK would accept this POST's headers (anything it refuses is left to it)."""
        if headers.version is not None and headers.version not in _HANDSHAKE_VERSIONS:
            return False
        key = (headers.host, headers.origin, headers.content_type, headers.accept)
        passed = self._checked.get(key)
        if passed is None:
            passed = self._check(headers)
            if len(self._checked) >= _MAX_CHECKED:
                self._checked.clear()  # the values come from clients: keep the memo bounded
            self._checked[key] = passed
        return passed

    def _check(self, headers: _Headers) -> bool:
        if self.policy.refusal(headers.host, headers.origin) is not None:
            return False
        if headers.content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return False
        has_json, has_sse = accepts(headers.accept.decode("latin-1"))
        return has_json and (self.json_response or has_sse)

    async def _try_fast(self, message: dict[str, Any], scope: Scope, send: Send, headers: _Headers) -> bool:
        method = message.get("method")
        if method not in _FAST_METHODS or message.get("jsonrpc") != "2.0" or not self._passes_sdk_checks(headers):
            return False
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            return False
        if method == "notifications/initialized":
            return "id" not in message and await self._initialized(scope, send, headers)
        request_id = message.get("id")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            return False
        if method == "initialize":
            return await self._initialize_session(request_id, params, scope, send, headers)
        if not self.stateless and not self._session_is_live(headers.session, scope):
            return False

        if method == "tools/call":
            name = (params or {}).get("name")
            arguments = (params or {}).get("arguments")
            if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
                return False
            result = await self._call(name, arguments, scope)
        elif method == "tools/list":
            if params and params.get("cursor") is not None:
                return False
            result = self._registry().list_result_bytes(granted_scopes(scope))
        else:  # ping (2025-11-25 "Utilities": an empty result)
            result = b"{}"
        await _json(send, 200, _response(request_id, result), self._session_echo(headers))
        return True

    def _session_echo(self, headers: _Headers) -> str | None:
        return headers.session if not self.stateless else None

    def _session_is_live(self, session: str | None, scope: Scope) -> bool:
        if session is None:
            return False
        if session in self.sessions:
            return self.sessions.find(session, requestor(scope)) is not None
        if self.manager is None or not _sdk_session_is_live(self.manager, session, scope):
            return False
        self._refresh_idle_clock(session)
        return True

    def _refresh_idle_clock(self, session: str) -> None:
        """Push back the SDK session's idle deadline, as its own requests do, at most once a second."""
        now = time.monotonic()
        if now - self._idle_refreshed.get(session, -math.inf) < _IDLE_REFRESH_EVERY:
            return
        if len(self._idle_refreshed) > 2 * len(getattr(self.manager, "_server_instances", ())) + 64:
            self._idle_refreshed.clear()  # forget sessions the SDK has ended
        self._idle_refreshed[session] = now
        _refresh_sdk_idle_deadline(self.manager, session)

    async def _initialize_session(
        self, request_id: str | int, params: Any, scope: Scope, send: Send, headers: _Headers
    ) -> bool:
        """`initialize` (2025-11-25 "Lifecycle"): the server's answer and, when stateful, a session."""
        answer = self._initialize()
        if answer is None or headers.session is not None or not initialize_params_are_plain(params):
            return False
        negotiated = negotiate(params["protocolVersion"])
        session_id: str | None = None
        if not self.stateless:
            if not self._issue_sessions:
                return False
            others = len(getattr(self.manager, "_server_instances", ())) if self.manager is not None else 0
            opened = self.sessions.open(requestor(scope), params, negotiated, others)
            if opened is None:
                await _json(send, 503, _TOO_MANY_SESSIONS)
                return True
            session_id = opened.id
        await _json(send, 200, _response(request_id, answer.result_bytes(negotiated)), session_id)
        return True

    async def _initialized(self, scope: Scope, send: Send, headers: _Headers) -> bool:
        """`notifications/initialized`: accepted with 202, as the SDK does."""
        if not self.stateless:
            opened = self.sessions.find(headers.session, requestor(scope))
            if opened is None:
                return False  # the SDK's session (or none): the SDK records it
            opened.initialized = True
        await _json(send, 202, b"", self._session_echo(headers))
        return True

    async def _try_delete(self, scope: Scope, send: Send, headers: _Headers) -> bool:
        """`DELETE` of a session issued here and never handed to the SDK: it ends."""
        if self.stateless or not headers.handshake_era or self.policy.refusal(headers.host, headers.origin):
            return False
        opened = self.sessions.find(headers.session, requestor(scope))
        if opened is None:
            return False
        self.sessions.discard(opened.id)
        await _json(send, 200, b"", opened.id)
        return True


def _response(request_id: str | int, result: bytes) -> bytes:
    encoded_id = str(request_id).encode() if type(request_id) is int else json.dumps(request_id).encode()
    return b'{"jsonrpc":"2.0","id":' + encoded_id + b',"result":' + result + b"}"


def _sdk_session_is_live(manager: Any, session: str, scope: Scope) -> bool:
    """Whether the SDK would serve this session id for this caller.

    Reads the manager's session table; if a future SDK renames it, the answer is "no" and
    every request simply takes the SDK path.
    """
    transports = getattr(manager, "_server_instances", None)
    owners = getattr(manager, "_session_owners", None)
    if not isinstance(transports, dict) or not isinstance(owners, dict):
        return False
    transport = transports.get(session)
    if transport is None or transport.is_terminated:
        return False
    if owners.get(session) != requestor(scope):
        return False
    idle_scope = getattr(transport, "idle_scope", None)
    return idle_scope is None or not idle_scope.cancel_called


def _refresh_sdk_idle_deadline(manager: Any, session: str) -> None:
    transport = getattr(manager, "_server_instances", {}).get(session)
    idle_scope = getattr(transport, "idle_scope", None)
    timeout = getattr(transport, "_idle_timeout", None)
    if idle_scope is None or timeout is None:
        return
    # A request in flight (an open GET stream) holds the session: its deadline is infinite.
    if not getattr(transport, "_requests_in_flight", 0) and math.isfinite(idle_scope.deadline):
        idle_scope.deadline = anyio.current_time() + timeout


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


async def _json(send: Send, status: int, payload: bytes, session: str | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if session is not None:
        headers.append((_SESSION_HEADER, session.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": text})

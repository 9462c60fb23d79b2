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
  the SDK (through `sdk.py`, the only module that touches the SDK's private parts; with an SDK
  it does not know, sessions are left to the SDK). Everything else - and anything this endpoint is unsure about - goes to the SDK.

The SDK is loaded, and its session manager started, on the first request that needs it, inside
a task group owned by the host app's lifespan: importing the `mcp` package costs more start-up
time and memory than the whole tool table, and a client that initializes, lists and calls
tools never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from starlette.types import Message, Receive, Scope, Send

from mcp_bridge import sdk
from mcp_bridge.asgi_io import SESSION_HEADER, read_message, send_json, send_plain
from mcp_bridge.auth import ScopeGuard, granted_scopes
from mcp_bridge.cancellation import CancellableCall
from mcp_bridge.handshake import (
    HANDSHAKE_VERSIONS,
    InitializeAnswer,
    initialize_params_are_plain,
    negotiate,
)
from mcp_bridge.registry import ToolRegistry
from mcp_bridge.security import FOREIGN_HOST_BODY, HostOriginPolicy, accepts
from mcp_bridge.sessions import (
    TOO_MANY_CALLER_SESSIONS,
    TOO_MANY_SESSIONS,
    Session,
    SessionTable,
    caller_at_limit,
    requestor,
)
from mcp_oauth_shim.media_types import JSON, is_media_type
from mcp_oauth_shim.memo import BoundedMemo

if TYPE_CHECKING:
    from mcp.server.lowlevel.server import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

logger = logging.getLogger(__name__)

# (tool name, arguments, the request's scope) -> the JSON bytes of a `CallToolResult`.
EncodedToolCaller = Callable[[str, "dict[str, Any] | None", Scope], Awaitable[bytes]]

_VERSION_HEADER = b"mcp-protocol-version"
# Anything else (the 2026-07-28 per-request envelope) is the SDK's to serve.
HANDSHAKE_VERSION_HEADERS = frozenset(v.encode() for v in HANDSHAKE_VERSIONS)
_JSON_BYTES = JSON.encode()
_FAST_METHODS = frozenset(
    {"tools/call", "tools/list", "ping", "initialize", "notifications/initialized", "notifications/cancelled"}
)
# The SDK's answer to a request its client cancelled (mcp.shared.session, REQUEST_CANCELLED).
_CANCELLED = b'{"code":-32800,"message":"Request cancelled"}'
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
# The SDK's answers without a request id (mcp.server.streamable_http_manager._error_response).
_SESSION_NOT_FOUND = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
_MAX_CHECKED = 256
# Fast-path refreshes of SDK sessions' idle deadlines remembered (one entry per live session).
_MAX_IDLE_REFRESHED = 16_384
# How often a fast-path request pushes back the idle deadline of an SDK session.
_IDLE_REFRESH_EVERY = 1.0


class _Headers:
    """The request headers the endpoint decides on: the first one of a repeated name, as the
    SDK reads them (Starlette's `Headers.get`), so that both paths judge the same value."""

    __slots__ = ("accept", "content_type", "host", "origin", "session", "version")

    def __init__(self, scope: Scope) -> None:
        raw: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        self.version = raw.get(_VERSION_HEADER)
        self.session = _text(raw.get(SESSION_HEADER))
        self.host = _text(raw.get(b"host"))
        self.origin = _text(raw.get(b"origin"))
        self.accept = raw.get(b"accept", b"")
        self.content_type = raw.get(b"content-type", b"")

    @property
    def handshake_era(self) -> bool:
        return self.version is None or self.version in HANDSHAKE_VERSION_HEADERS


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


@dataclass(eq=False, kw_only=True)
class MCPEndpoint:
    """ASGI app for one mounted MCP path; its session manager lives in the host's lifespan.

    Given by the bridge: its SDK `Server`, tool table and encoded tool call, and what to answer
    `initialize` with (None: the SDK answers it).
    """

    server: Callable[[], Server]
    registry: Callable[[], ToolRegistry]
    call: EncodedToolCaller
    initialize: Callable[[], InitializeAnswer | None]
    stateless: bool
    json_response: bool
    policy: HostOriginPolicy
    guard: ScopeGuard | None
    fast_path: bool = True
    manager: StreamableHTTPSessionManager | None = field(default=None, init=False)  # once started
    # The manager's private parts (sdk.py), or None: then sessions are the SDK's alone.
    _internals: sdk.SessionManagerInternals | None = field(default=None, init=False)
    # Sessions issued here and not yet handed to the SDK.
    sessions: SessionTable = field(default_factory=SessionTable, init=False)
    # Off for an SDK version whose internals are unknown, or once the SDK refused to adopt one.
    _issue_sessions: bool = field(default_factory=sdk.version_is_known, init=False)
    _idle_refreshed: BoundedMemo[str, float] = field(default_factory=lambda: BoundedMemo(_MAX_IDLE_REFRESHED), init=False)
    _checked: BoundedMemo[tuple[str | None, str | None, bytes, bytes], bool] = field(
        default_factory=lambda: BoundedMemo(_MAX_CHECKED), init=False
    )
    # Owners of the session-less POSTs the SDK is serving now: each may be opening a session
    # the SDK has not admitted yet, and counts against its caller's limit until its answer starts.
    _opening: list[Any] = field(default_factory=list, init=False)
    # The tool calls the fast path runs in stateful sessions, by (session, request id): what a
    # client's `notifications/cancelled` ends. One entry per call in flight.
    _in_flight: dict[tuple[str, str | int], CancellableCall] = field(default_factory=dict, init=False)
    _task_group: TaskGroup | None = field(default=None, init=False)
    _asyncio: bool = field(default=False, init=False)  # the app runs on asyncio (`_call_in_session`)
    _stopping: anyio.Event | None = field(default=None, init=False)
    _starting: anyio.Lock | None = field(default=None, init=False)
    _adopting: anyio.Lock | None = field(default=None, init=False)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """For one lifespan of the host app: own the task group the session manager runs in."""
        async with anyio.create_task_group() as task_group:
            self._task_group, self._stopping = task_group, anyio.Event()
            self._asyncio = _on_asyncio()
            self._starting, self._adopting = anyio.Lock(), anyio.Lock()
            try:
                yield
            finally:
                self._stopping.set()
                self._task_group = None
                self.sessions.clear()
                self._idle_refreshed.clear()

    async def _ensure_manager(self) -> StreamableHTTPSessionManager | None:
        """The session manager, started on first use; None when the app's lifespan is not running."""
        if self.manager is None and self._starting is not None:
            async with self._starting:
                if self.manager is None and self._task_group is not None:
                    await self._task_group.start(self._run_manager)
        return self.manager

    async def _run_manager(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # The SDK's import takes a while: do it off the event loop, which keeps serving meanwhile.
        module = await anyio.to_thread.run_sync(importlib.import_module, "mcp.server.streamable_http_manager")
        manager = module.StreamableHTTPSessionManager(
            app=self.server(),
            json_response=self.json_response,
            stateless=self.stateless,
            security_settings=self.policy.to_sdk(),
            max_request_body_size=DEFAULT_MAX_BODY_SIZE,
        )
        assert self._stopping is not None
        stopping = self._stopping
        async with manager.run():
            self.manager, self._internals = manager, sdk.internals_of(manager)
            if self._internals is None:
                self._issue_sessions = False
            task_status.started()
            try:
                await stopping.wait()
            finally:
                self.manager, self._internals = None, None

    async def _to_sdk(self, scope: Scope, receive: Receive, send: Send, headers: _Headers) -> None:
        opening = not self.stateless and headers.session is None and scope["method"] == "POST"
        if opening and self._caller_at_limit(scope):
            # The SDK opens a session for every POST without one (even one it then refuses).
            await send_json(send, 429, TOO_MANY_CALLER_SESSIONS)
            return
        if not opening:
            await self._sdk_handles(scope, receive, send, headers)
            return
        # Counted from the check on, with no await between: requests sent at once would each
        # pass the count before the SDK admits any of them. Until the answer starts: by then
        # the SDK counts the session itself, and a client that opens its next session once
        # this answer arrived must not find this one counted twice.
        owner = requestor(scope)
        self._opening.append(owner)
        counted = True

        async def send_uncounting(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self._opening.remove(owner)
            await send(message)

        try:
            await self._sdk_handles(scope, receive, send_uncounting, headers)
        finally:
            if counted:
                self._opening.remove(owner)

    async def _sdk_handles(self, scope: Scope, receive: Receive, send: Send, headers: _Headers) -> None:
        if not self.stateless and headers.session is not None and headers.handshake_era:
            # A session this endpoint issued becomes the SDK's before the SDK sees its request.
            # Any other session is unknown while the SDK is not running, as the SDK would say.
            opened = self.sessions.find(headers.session, requestor(scope))
            known = await self._adopt(opened, scope) if opened is not None else self.manager is not None
            if not known:
                await send_json(send, 404, _SESSION_NOT_FOUND)
                return
        manager = await self._ensure_manager()
        if manager is None:
            await send_plain(send, 503, b"MCP endpoint not running: serve the app with its lifespan enabled")
            return
        if self.policy.refusal(headers.host, headers.origin) == 421:
            await send_plain(send, 421, FOREIGN_HOST_BODY)  # the SDK's own answer names no setting
            return
        await manager.handle_request(scope, receive, send)

    def _caller_at_limit(self, scope: Scope) -> bool:
        """The verified caller already holds `max_sessions_per_caller` sessions (here and in the
        SDK). An app without auth has no caller to count: only the server's limit applies."""
        sdk_owners = self._internals.owners() if self._internals is not None else ()
        limit = self.sessions.max_sessions_per_caller
        return caller_at_limit(requestor(scope), limit, self.sessions.owners(), self._opening, sdk_owners)

    async def _adopt(self, opened: Session, scope: Scope) -> bool:
        if await self._ensure_manager() is None:
            return False
        internals = self._internals
        assert self._adopting is not None
        async with self._adopting:
            if internals is None:  # an SDK this bridge does not know: its sessions only
                self.sessions.discard(opened.id)
                return False
            if opened.id not in self.sessions:  # a concurrent request adopted it meanwhile
                return internals.holds(opened.id)
            try:
                adopted = await internals.adopt(opened, scope)
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

        read = await read_message(receive, send, DEFAULT_MAX_BODY_SIZE)
        if read is None:
            return
        message, replayed = read
        if self.guard is not None and message is not None:
            refused = self.guard.refusal(message, scope)
            if refused is not None:
                await refused(scope, replayed, send)
                return

        if self.fast_path and isinstance(message, dict) and await self._try_fast(message, scope, send, headers):
            return
        await self._to_sdk(scope, replayed, send, headers)

    def _passes_sdk_checks(self, headers: _Headers) -> bool:
        """The SDK would accept this POST's headers (anything it refuses is left to it)."""
        if not headers.handshake_era:
            return False
        key = (headers.host, headers.origin, headers.content_type, headers.accept)
        passed = self._checked.get(key)
        if passed is None:
            has_json, has_sse = accepts(headers.accept.decode("latin-1"))
            passed = (
                self.policy.refusal(headers.host, headers.origin) is None
                # The SDK compares the type case-sensitively, after no leading space (RFC 9110
                # §8.3.1 would take `APPLICATION/JSON`; the SDK answers it 415): only what it takes.
                and headers.content_type.startswith(_JSON_BYTES)
                and is_media_type(headers.content_type, JSON)
                and has_json
                and (self.json_response or has_sse)
            )
            self._checked.put(key, passed)  # the values come from clients: the memo is bounded
        return passed

    async def _try_fast(self, message: dict[str, Any], scope: Scope, send: Send, headers: _Headers) -> bool:
        method = message.get("method")
        if method not in _FAST_METHODS or message.get("jsonrpc") != "2.0" or not self._passes_sdk_checks(headers):
            return False
        params = message.get("params")
        if params is not None and not (isinstance(params, dict) and _plain_meta(params.get("_meta"))):
            return False
        if "error" in message:  # the SDK reads a message with an `error` member as a response
            return False
        if method == "notifications/initialized":
            return "id" not in message and await self._initialized(scope, send, headers)
        if method == "notifications/cancelled":
            return "id" not in message and await self._cancelled(params, scope, send, headers)
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
            if self.stateless or headers.session is None:
                result = await self.call(name, arguments, scope)
            else:
                answered = await self._call_in_session(name, arguments, scope, (headers.session, request_id))
                if answered is None:  # the client cancelled the call
                    await send_json(send, 200, _error_response(request_id, _CANCELLED), headers.session)
                    return True
                result = answered
        elif method == "tools/list":
            if params and params.get("cursor") is not None:
                return False
            result = self.registry().list_result_bytes(granted_scopes(scope))
        else:  # ping (2025-11-25 "Utilities": an empty result)
            result = b"{}"
        await send_json(send, 200, _response(request_id, result), None if self.stateless else headers.session)
        return True

    def _session_is_live(self, session: str | None, scope: Scope) -> bool:
        if session is None:
            return False
        if session in self.sessions:
            return self.sessions.find(session, requestor(scope)) is not None
        internals = self._internals
        if internals is None or not internals.serves(session, requestor(scope)):
            return False
        # Push back the SDK session's idle deadline, as its own requests do, at most once a second.
        now = time.monotonic()
        if self._idle_refreshed.get(session, now) is None:  # not refreshed in the last second
            self._idle_refreshed.put(session, now, now + _IDLE_REFRESH_EVERY)  # sessions the SDK ended age out
            internals.refresh_idle_deadline(session)
        return True

    async def _initialize_session(
        self, request_id: str | int, params: Any, scope: Scope, send: Send, headers: _Headers
    ) -> bool:
        """`initialize` (2025-11-25 "Lifecycle"): the server's answer and, when stateful, a session."""
        answer = self.initialize()
        if answer is None or headers.session is not None or not initialize_params_are_plain(params):
            return False
        negotiated = negotiate(params["protocolVersion"])
        session_id: str | None = None
        if not self.stateless:
            if not self._issue_sessions:
                return False
            if self._caller_at_limit(scope):
                await send_json(send, 429, TOO_MANY_CALLER_SESSIONS)
                return True
            others = self._internals.session_count() if self._internals is not None else 0
            opened = self.sessions.open(requestor(scope), params, negotiated, others)
            if opened is None:
                await send_json(send, 503, TOO_MANY_SESSIONS)
                return True
            session_id = opened.id
        await send_json(send, 200, _response(request_id, answer.result_bytes(negotiated)), session_id)
        return True

    async def _initialized(self, scope: Scope, send: Send, headers: _Headers) -> bool:
        """`notifications/initialized`: accepted with 202, as the SDK does."""
        if not self.stateless:
            opened = self.sessions.find(headers.session, requestor(scope))
            if opened is None:
                return False  # the SDK's session (or none): the SDK records it
            opened.initialized = True
        await send_json(send, 202, b"", None if self.stateless else headers.session)
        return True

    async def _call_in_session(
        self, name: str, arguments: dict[str, Any] | None, scope: Scope, key: tuple[str, str | int]
    ) -> bytes | None:
        """The tool call's result, or None when the client cancelled it (`_cancelled`).

        The call is a `CancellableCall`, which `_cancelled` ends: asyncio's own way to cancel
        a task's work and carry on (it uncancels the task). An anyio `CancelScope` would serve
        any event loop, but cost 30-47 µs per stateful call against 0-13 µs for
        `asyncio.timeout` (the `bench/` app's tools/call, 610-660 µs, interleaved A/B runs on a
        loaded machine), which `CancellableCall` undercuts by about 4 µs more. Under another
        event loop (trio) a call is not cancellable here; the SDK's path cancels its own.
        """
        if not self._asyncio:
            return await self.call(name, arguments, scope)
        call = CancellableCall()
        self._in_flight[key] = call
        try:
            return await call.run(self.call(name, arguments, scope))
        finally:
            if self._in_flight.get(key) is call:
                del self._in_flight[key]

    async def _cancelled(self, params: dict[str, Any] | None, scope: Scope, send: Send, headers: _Headers) -> bool:
        """`notifications/cancelled` (2025-11-25 "Cancellation") of a tool call this endpoint is
        running: the call ends, answered as the SDK answers a cancelled request; accepted with 202.
        Any other is the SDK's (it may be running the request named)."""
        request_id = (params or {}).get("requestId")
        if self.stateless or headers.session is None or not isinstance(request_id, (str, int)):
            return False
        if isinstance(request_id, bool):  # JSON's true is no request id (and would equal 1 here)
            return False
        call = self._in_flight.get((headers.session, request_id))
        if call is None or not self._session_is_live(headers.session, scope):
            return False
        call.cancel()  # the call's task wakes up cancelled on the next loop turn
        await send_json(send, 202, b"", headers.session)
        return True

    async def _try_delete(self, scope: Scope, send: Send, headers: _Headers) -> bool:
        """`DELETE` of a session issued here and never handed to the SDK: it ends."""
        if self.stateless or not headers.handshake_era or self.policy.refusal(headers.host, headers.origin):
            return False
        opened = self.sessions.find(headers.session, requestor(scope))
        if opened is None:
            return False
        self.sessions.discard(opened.id)
        await send_json(send, 200, b"", opened.id)
        return True


def _on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (not trio, under anyio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _plain_meta(meta: Any) -> bool:
    """`params._meta` as the SDK takes it (MCP 2025-11-25 `RequestParams`): absent, or an object
    whose `progressToken`, if any, is a string or an integer. Anything else is left to the
    SDK, which answers it -32602."""
    return meta is None or (type(meta) is dict and type(meta.get("progressToken", "")) in (str, int))


def _response(request_id: str | int, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + _encoded_id(request_id) + b',"result":' + result + b"}"


def _error_response(request_id: str | int, error: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + _encoded_id(request_id) + b',"error":' + error + b"}"


def _encoded_id(request_id: str | int) -> bytes:
    return str(request_id).encode() if type(request_id) is int else json.dumps(request_id).encode()

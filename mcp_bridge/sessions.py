"""Stateful sessions opened without the SDK (MCP 2025-11-25 "Transports", Session Management).

The endpoint answers `initialize` itself (`handshake.py`) and issues the `Mcp-Session-Id`
here, so a client that only lists and calls tools never loads the SDK. The session is bound to
the credential that opened it, ends on `DELETE` or after the SDK's idle timeout, and answers
404 afterwards - the SDK's own rules. The first request the endpoint does not serve itself
(the `GET` stream, another method, a batch) hands the session to the SDK's
`StreamableHTTPSessionManager` (`adopt`): it replays the client's `initialize` (and
`notifications/initialized`) into a transport registered under the same id, after which the
SDK serves that session like one it opened itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import Message, Receive, Scope

logger = logging.getLogger(__name__)

# The SDK's defaults (mcp.server.streamable_http_manager): 30 minutes idle, 10 000 sessions.
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_MAX_SESSIONS = 10_000
_SWEEP_EVERY = 60.0
_BEARER_AUTH_MODULE = "mcp.server.auth.middleware.bearer_auth"


def requestor(scope: Scope) -> Any:
    """The SDK's `AuthorizationContext` of the verified caller, or None (the SDK's session owner).

    A user can only be the SDK's `AuthenticatedUser` once that module is loaded (the shim's
    `protect` loads it), so an app without auth never imports the SDK for this.
    """
    user = scope.get("user")
    if user is None:
        return None
    module = sys.modules.get(_BEARER_AUTH_MODULE)
    if module is None or not isinstance(user, module.AuthenticatedUser):
        return None
    return module.authorization_context(user)


@dataclass(eq=False, slots=True)
class Session:
    id: str
    owner: Any
    params: dict[str, Any]  # the client's `initialize` params, replayed when the SDK adopts it
    protocol_version: str  # negotiated
    seen: float  # when a request last used it (the table's clock)
    initialized: bool = False  # `notifications/initialized` arrived


class SessionTable:
    """Sessions issued by the endpoint and not (yet) handed to the SDK."""

    def __init__(
        self,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def open(self, owner: Any, params: dict[str, Any], protocol_version: str, others: int = 0) -> Session | None:
        """A new session, or None when `max_sessions` (counting `others`, the SDK's) are open."""
        self._sweep()
        if self.max_sessions is not None and len(self._sessions) + others >= self.max_sessions:
            return None
        session = Session(uuid.uuid4().hex, owner, params, protocol_version, self._clock())
        self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None, owner: Any) -> Session | None:
        """The live session `session_id` if `owner` opened it; refreshes its idle clock."""
        session = self._sessions.get(session_id) if session_id is not None else None
        if session is None:
            return None
        now = self._clock()
        if self.idle_timeout is not None and now - session.seen > self.idle_timeout:
            del self._sessions[session.id]
            return None
        if session.owner != owner:
            return None  # the SDK answers a foreign credential exactly like an unknown session
        session.seen = now
        return session

    def discard(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def clear(self) -> None:
        self._sessions.clear()

    def _sweep(self) -> None:
        now = self._clock()
        if self.idle_timeout is None or now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        expired = [key for key, s in self._sessions.items() if now - s.seen > self.idle_timeout]
        for key in expired:
            del self._sessions[key]


_COPIED_SCOPE_KEYS = ("type", "asgi", "http_version", "scheme", "server", "client", "root_path", "path", "raw_path")


def _post(origin: Scope, session_id: str, protocol_version: str | None) -> Scope:
    """A POST to the endpoint carrying the caller's Host/Origin (the transport checks them)."""
    headers = [(k, v) for k, v in origin["headers"] if k in (b"host", b"origin")]
    headers += [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-session-id", session_id.encode("ascii")),
    ]
    if protocol_version is not None:
        headers.append((b"mcp-protocol-version", protocol_version.encode("ascii")))
    scope = {key: origin[key] for key in _COPIED_SCOPE_KEYS if key in origin}
    scope.update(method="POST", query_string=b"", headers=headers)
    if "user" in origin:
        scope["user"] = origin["user"]
    if "auth" in origin:
        scope["auth"] = origin["auth"]
    return scope


def _one_body(message: dict[str, Any]) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": json.dumps(message).encode(), "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        # The replayed request has no client waiting on it; its stream ends with its answer.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def adopt(manager: Any, session: Session, origin: Scope) -> bool:
    """Make the SDK's session manager serve `session` from now on; False if it refused.

    Uses the manager's session table and its opening-request routine (private in the SDK:
    tests pin the behaviour, and a failure only ends this one session with a 404).
    """
    from mcp.server.streamable_http import StreamableHTTPServerTransport

    transport = StreamableHTTPServerTransport(
        mcp_session_id=session.id,
        is_json_response_enabled=manager.json_response,
        event_store=manager.event_store,
        security_settings=manager.security_settings,
        retry_interval=manager.retry_interval,
        idle_timeout=manager.session_idle_timeout,
    )
    manager._server_instances[session.id] = transport
    if session.owner is not None:
        manager._session_owners[session.id] = session.owner

    async def discard(message: Message) -> None:
        """The replayed handshake's answers went to the client long ago: drop them."""

    initialize = {"jsonrpc": "2.0", "id": "mcp-bridge-adopt", "method": "initialize", "params": session.params}
    await manager._serve_opening_request(transport, _post(origin, session.id, None), _one_body(initialize), discard)
    if session.id not in manager._server_instances:
        return False
    if session.initialized:
        notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        replayed = _post(origin, session.id, session.protocol_version)
        await transport.handle_request(replayed, _one_body(notification), discard)
    return True

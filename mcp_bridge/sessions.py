"""Stateful sessions opened without the SDK (MCP 2025-11-25 "Transports", Session Management).

The endpoint answers `initialize` itself (`handshake.py`) and issues the `Mcp-Session-Id`
here, so a client that only lists and calls tools never loads the SDK. The session is bound to
the credential that opened it, ends on `DELETE` or after the SDK's idle timeout, and answers
404 afterwards - the SDK's own rules. The first request the endpoint does not serve itself
(the `GET` stream, another method, a batch) hands the session to the SDK's
`StreamableHTTPSessionManager` (`sdk.SessionManagerInternals.adopt`): it replays the client's `initialize` (and
`notifications/initialized`) into a transport registered under the same id, after which the
SDK serves that session like one it opened itself.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

# The SDK's defaults (mcp.server.streamable_http_manager): 30 minutes idle, 10 000 sessions.
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_MAX_SESSIONS = 10_000
# Sessions one caller (one user, whichever client: `sessions_of_caller`) may hold open at
# once on one endpoint (a Streamable HTTP endpoint: here and in the SDK together; a legacy
# HTTP+SSE endpoint: its open streams). MCP clients open one per connection; the bound keeps a
# caller that opens sessions and never ends them from filling the server's DEFAULT_MAX_SESSIONS
# for everyone else.
DEFAULT_MAX_SESSIONS_PER_CALLER = 100
# The answers to a request that would open a session beyond a limit, worded as the SDK words
# its own (mcp.server.streamable_http_manager: a JSON-RPC error without a request id): 429 for
# the caller's limit, 503 for the server's.
TOO_MANY_CALLER_SESSIONS = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,'
    b'"message":"Too many open sessions for this caller: end one (DELETE, or close its stream) before opening another"}}'
)
TOO_MANY_SESSIONS = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Too many open sessions"}}'
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


def sessions_of_caller(owner: Any, owners: Iterable[Any]) -> int:
    """How many of `owners` (session owners, `requestor`s) are the caller `owner`.

    A caller is the user (issuer and subject) when the token names one, whichever client it
    was issued to: anyone may register a client (RFC 7591), so a user signing in with a new
    client for each session would otherwise hold the limit once per client. Without a subject
    (a machine client's token), the owners must be equal. A scan, written out for speed
    (about 1 ms for 10,000 owners): it runs once per new session.
    """
    if owner is None:
        return 0
    subject, issuer = owner["subject"], owner["issuer"]
    if subject is None:
        return sum(1 for other in owners if other == owner)
    return sum(1 for other in owners if other is not None and other["subject"] == subject and other["issuer"] == issuer)


def caller_at_limit(owner: Any, limit: int, *owners: Iterable[Any]) -> bool:
    """The caller `owner` (a `requestor`) already holds `limit` of the sessions whose owners
    are `owners` (one iterable per place an endpoint keeps sessions). An app without auth has
    no caller to count (`owner` is None): only the server's limit applies to it."""
    if owner is None:
        return False
    return sum(sessions_of_caller(owner, group) for group in owners) >= limit


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
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
        max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_sessions_per_caller = max_sessions_per_caller
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
        if len(self._sessions) + others >= self.max_sessions:
            return None
        session = Session(uuid.uuid4().hex, owner, params, protocol_version, self._clock())
        self._sessions[session.id] = session
        return session

    def owners(self) -> Iterator[Any]:
        """The owners of the live sessions (for `caller_at_limit`, once per new session)."""
        self._sweep()
        return (s.owner for s in self._sessions.values())

    def find(self, session_id: str | None, owner: Any) -> Session | None:
        """The live session `session_id` if `owner` opened it; refreshes its idle clock."""
        session = self._sessions.get(session_id) if session_id is not None else None
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self.idle_timeout:
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
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        expired = [key for key, s in self._sessions.items() if now - s.seen > self.idle_timeout]
        for key in expired:
            del self._sessions[key]

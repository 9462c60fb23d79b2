"""The one module that touches private parts of the `mcp` SDK's Streamable HTTP session manager.

The endpoint serves `initialize`, `tools/list` and `tools/call` without the SDK, and issues
session ids itself (`sessions.py`). Three things need the SDK's session manager from the
inside, because its public API has no word for them:

* handing a session opened here to the SDK (adoption): register a transport under the
  session's id in `_server_instances` / `_session_owners` and replay the client's `initialize`
  through `_serve_opening_request`;
* knowing whether the SDK would serve a session id for a caller (`_server_instances`,
  `_session_owners`, the transport's `idle_scope`), so the fast path may answer that session's
  tool calls;
* pushing back an SDK session's idle deadline when the fast path served its request (the
  transport's `idle_scope`, `_idle_timeout`, `_requests_in_flight`), as the SDK's own requests do.

Those names are private: they exist in the SDK versions this was written and tested against
(:data:`KNOWN_VERSIONS`, mcp>=2.3,<3). For any other installed version, or when a name is
missing at run time, :func:`internals_of` returns ``None`` and the endpoint takes the plain
public path: every session is opened and served by the SDK itself (`handle_request`); the
fast path still answers stateless requests. Slower for stateful clients, never wrong.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import Message, Scope

from mcp_bridge.asgi_io import body_then_wait

if TYPE_CHECKING:
    from mcp_bridge.sessions import Session

__all__ = ["KNOWN_VERSIONS", "SessionManagerInternals", "installed_version", "internals_of", "version_is_known"]

logger = logging.getLogger(__name__)

# [low, high): the `mcp` releases whose private session-manager parts this module uses.
KNOWN_VERSIONS: tuple[tuple[int, int], tuple[int, int]] = ((2, 3), (3, 0))

# What the manager instance must have (name -> the type it must be).
_MANAGER_TABLES = ("_server_instances", "_session_owners")
_MANAGER_METHODS = ("_serve_opening_request",)
# The manager's public settings a transport is built from, in adoption.
_MANAGER_SETTINGS = ("json_response", "event_store", "security_settings", "retry_interval", "session_idle_timeout")


_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def installed_version() -> tuple[int, ...] | None:
    """The installed `mcp` distribution's version as numbers (None if unknown or unparsable)."""
    try:
        text = importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return None
    # The leading dotted numbers: "2.3.0rc1" -> (2, 3, 0), "2.3.dev1" -> (2, 3).
    match = _RELEASE.match(text)
    return tuple(int(part) for part in match.group().split(".")) if match else None


@functools.cache
def version_is_known() -> bool:
    """Is the installed SDK one whose private parts this module was tested against?"""
    version = installed_version()
    low, high = KNOWN_VERSIONS
    known = version is not None and low <= version[:2] < high
    if not known:
        logger.info(
            "mcp SDK %s is outside the versions the bridge knows (%s.%s to before %s.%s): sessions are "
            "opened and served by the SDK itself",
            ".".join(map(str, version or ())) or "(unknown)",
            *low,
            *high,
        )
    return known


class SessionManagerInternals:
    """What the endpoint does inside one running `StreamableHTTPSessionManager`.

    Built by :func:`internals_of` only after every private name was found on the manager.
    """

    __slots__ = ("_manager", "_owners", "_transports")

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._transports: dict[str, Any] = manager._server_instances
        self._owners: dict[str, Any] = manager._session_owners

    def session_count(self) -> int:
        """Sessions the SDK holds open (they count against the endpoint's session limit)."""
        return len(self._transports)

    def owners(self) -> Iterable[Any]:
        """The owners of the open SDK sessions (for `sessions.caller_at_limit`)."""
        return self._owners.values()

    def holds(self, session_id: str) -> bool:
        return session_id in self._transports

    def serves(self, session_id: str, owner: object) -> bool:
        """Whether the SDK would serve `session_id` for a caller identified as `owner`."""
        transport = self._transports.get(session_id)
        if transport is None or getattr(transport, "is_terminated", True):
            return False
        if self._owners.get(session_id) != owner:
            return False
        idle_scope = getattr(transport, "idle_scope", None)
        return idle_scope is None or not idle_scope.cancel_called

    def refresh_idle_deadline(self, session_id: str) -> None:
        """Push back the session's idle deadline, as a request the SDK served would."""
        transport = self._transports.get(session_id)
        idle_scope = getattr(transport, "idle_scope", None)
        timeout = getattr(transport, "_idle_timeout", None)
        if idle_scope is None or timeout is None:
            return
        # A request in flight (an open GET stream) holds the session: its deadline is infinite.
        if not getattr(transport, "_requests_in_flight", 0) and math.isfinite(idle_scope.deadline):
            idle_scope.deadline = anyio.current_time() + timeout

    async def adopt(self, session: Session, origin: Scope) -> bool:
        """Make the SDK serve `session` from now on; False if it refused the replayed handshake."""
        from mcp.server.streamable_http import StreamableHTTPServerTransport

        manager = self._manager
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session.id,
            is_json_response_enabled=manager.json_response,
            event_store=manager.event_store,
            security_settings=manager.security_settings,
            retry_interval=manager.retry_interval,
            idle_timeout=manager.session_idle_timeout,
        )
        self._transports[session.id] = transport
        if session.owner is not None:
            self._owners[session.id] = session.owner

        async def discard(message: Message) -> None:
            """The replayed handshake's answers went to the client long ago: drop them."""

        initialize = {"jsonrpc": "2.0", "id": "mcp-bridge-adopt", "method": "initialize", "params": session.params}
        opening = _post(origin, session.id, None)
        await manager._serve_opening_request(transport, opening, body_then_wait(json.dumps(initialize).encode()), discard)
        if session.id not in self._transports:
            return False
        if session.initialized:
            notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            replayed = _post(origin, session.id, session.protocol_version)
            await transport.handle_request(replayed, body_then_wait(json.dumps(notification).encode()), discard)
        return True


def internals_of(manager: Any) -> SessionManagerInternals | None:
    """The private parts of `manager`, or None when the SDK is not one this module knows."""
    if not version_is_known():
        return None
    tables = [getattr(manager, name, None) for name in _MANAGER_TABLES]
    methods = [getattr(manager, name, None) for name in _MANAGER_METHODS]
    settings_present = all(hasattr(manager, name) for name in _MANAGER_SETTINGS)
    if not all(isinstance(t, dict) for t in tables) or not all(callable(m) for m in methods) or not settings_present:
        logger.info("the mcp SDK's session manager lacks the parts the bridge uses: sessions are the SDK's own")
        return None
    return SessionManagerInternals(manager)


# What the replayed request keeps of the caller's (its identity included: `user`, `auth`).
_COPIED_SCOPE_KEYS = (
    "type", "asgi", "http_version", "scheme", "server", "client", "root_path", "path", "raw_path", "user", "auth"
)


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
    return scope

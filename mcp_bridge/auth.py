"""Per-tool scope requirements and their HTTP challenges.

MCP 2025-11-25 "Authorization", Scope Challenge Handling: a request whose token lacks a scope
the operation needs gets HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="...", resource_metadata="..."` (RFC 6750 §3.1). The `scope` lists the scopes already
granted plus the missing ones (the spec's recommended approach), so the client's step-up
authorization does not lose permissions it had.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Scope, Send


def granted_scopes(scope: Scope) -> frozenset[str] | None:
    """Scopes of the verified token on this request, or None when nothing was verified."""
    user = scope.get("user")
    token = getattr(user, "access_token", None)
    if token is None:
        return None
    return frozenset(getattr(token, "scopes", ()) or ())


async def send_insufficient_scope(
    send: Send, *, needed: Iterable[str], granted: Iterable[str], resource_metadata: str | None, tool: str
) -> None:
    """HTTP 403 step-up challenge for a `tools/call` whose tool needs more scopes."""
    # Imported here: with auth=None the bridge never loads the shim.
    from mcp_oauth_shim.rfc6750 import bearer_error_response

    needed = set(needed)
    response = bearer_error_response(
        error="insufficient_scope",
        error_description=f"tool {tool} requires scope {' '.join(sorted(needed))}",
        resource_metadata=resource_metadata,
        scope=sorted(needed | set(granted)),
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}

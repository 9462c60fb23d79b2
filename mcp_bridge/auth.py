"""Per-tool scope requirements and their HTTP challenges.

MCP 2025-11-25 "Authorization", Scope Challenge Handling: a request whose token lacks a scope
the operation needs gets HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="...", resource_metadata="..."` (RFC 6750 §3.1). The `scope` lists the scopes already
granted plus the missing ones (the spec's recommended approach), so the client's step-up
authorization does not lose permissions it had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import Scope

if TYPE_CHECKING:
    from starlette.responses import Response

    from mcp_bridge.registry import ToolRegistry


def granted_scopes(scope: Scope) -> frozenset[str] | None:
    """Scopes of the verified token on this request, or None when nothing was verified."""
    user = scope.get("user")
    token = getattr(user, "access_token", None)
    if token is None:
        return None
    return frozenset(getattr(token, "scopes", ()) or ())


class ScopeGuard:
    """Refuses the first `tools/call` in a message whose tool needs scopes the caller lacks."""

    def __init__(self, registry: Callable[[], ToolRegistry], resource_metadata: str | None) -> None:
        self._registry = registry
        self.resource_metadata = resource_metadata

    def refusal(self, message: object, scope: Scope) -> Response | None:
        """The HTTP 403 step-up challenge for the first refused call in `message` (one JSON-RPC
        message or a batch); None when nothing is refused. A plain function, not a coroutine:
        it runs on every authenticated MCP request and lets nearly all of them through."""
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
                # Imported here: with auth=None the bridge never loads the shim.
                from mcp_oauth_shim.rfc6750 import bearer_error_response, is_scope_token

                needed = spec.scopes - granted
                # A granted value that is no scope-token (an IdP's role named with a space or a
                # quote) cannot be named in the challenge, nor asked for again: left out.
                kept = {s for s in granted if is_scope_token(s)}
                return bearer_error_response(
                    error="insufficient_scope",
                    error_description=f"tool {spec.name} requires scope {' '.join(sorted(needed))}",
                    resource_metadata=self.resource_metadata,
                    scope=sorted(needed | kept),
                )
        return None

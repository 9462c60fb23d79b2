"""The bridge's tool table: lookups by name and pre-encoded `tools/list` results.

`tools/list` answers are the same bytes every time (per set of granted scopes when unreachable
tools are hidden), so they are encoded once and reused; a refresh swaps in a new table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mcp_bridge.tools import ToolSpec

_MAX_CACHED_SCOPE_SETS = 256


class ToolRegistry:
    def __init__(self, specs: Sequence[ToolSpec], *, hide_unreachable: bool) -> None:
        self.specs: tuple[ToolSpec, ...] = tuple(specs)
        self.by_name: dict[str, ToolSpec] = {spec.name: spec for spec in specs}
        self.scoped = any(spec.scopes for spec in self.specs)  # does any tool need scopes?
        self.hide_unreachable = hide_unreachable
        self._encoded: dict[frozenset[str] | None, bytes] = {}

    def visible(self, granted: frozenset[str] | None) -> list[ToolSpec]:
        """Tools to list for a caller holding `granted` scopes (None: no verified token)."""
        if not self.hide_unreachable or granted is None:
            return list(self.specs)
        return [spec for spec in self.specs if spec.scopes <= granted]

    def tools(self, granted: frozenset[str] | None = None) -> list[Any]:
        """`mcp_types.Tool` models (the SDK path and `MCPBridge.tools`)."""
        return [spec.tool for spec in self.visible(granted)]

    def list_result_bytes(self, granted: frozenset[str] | None) -> bytes:
        """The JSON of a `ListToolsResult` for this caller, encoded once per scope set."""
        key = granted if self.hide_unreachable else None
        cached = self._encoded.get(key)
        if cached is None:
            tools = [spec.tool_json for spec in self.visible(key)]
            # Tool schemas are trees built by the bridge (recursion stays a `$ref`): no cycle check.
            cached = json.dumps(
                {"tools": tools}, separators=(",", ":"), ensure_ascii=False, check_circular=False
            ).encode()
            if len(self._encoded) >= _MAX_CACHED_SCOPE_SETS:
                self._encoded.clear()
            self._encoded[key] = cached
        return cached

"""The bridge's tool table: lookups by name and pre-encoded `tools/list` results.

`tools/list` answers are the same bytes every time (per set of granted scopes when unreachable
tools are hidden), so they are encoded once and reused; a refresh swaps in a new table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mcp_bridge.encoding import encode_utf8
from mcp_bridge.tools import ToolSpec
from mcp_oauth_shim.memo import BoundedMemo

if TYPE_CHECKING:
    from mcp_types import Tool

_MAX_CACHED_SCOPE_SETS = 256


class ToolRegistry:
    """The tools one bridge serves, by name, with their `tools/list` answers encoded once."""

    def __init__(self, specs: Sequence[ToolSpec], *, hide_unreachable: bool) -> None:
        self.specs: tuple[ToolSpec, ...] = tuple(specs)
        self.by_name: dict[str, ToolSpec] = {spec.name: spec for spec in specs}
        self.scoped = any(spec.scopes for spec in self.specs)  # does any tool need scopes?
        self.hide_unreachable = hide_unreachable
        # Keys are scope sets from verified tokens: bounded like every memo keyed by requests.
        self._encoded: BoundedMemo[frozenset[str] | None, bytes] = BoundedMemo(_MAX_CACHED_SCOPE_SETS)

    def visible(self, granted: frozenset[str] | None) -> list[ToolSpec]:
        """Tools to list for a caller holding `granted` scopes (None: no verified token)."""
        if not self.hide_unreachable or granted is None:
            return list(self.specs)
        return [spec for spec in self.specs if spec.scopes <= granted]

    def tools(self, granted: frozenset[str] | None = None) -> list[Tool]:
        """`mcp_types.Tool` models (the SDK path and `MCPBridge.tools`)."""
        return [spec.tool for spec in self.visible(granted)]

    def list_result_bytes(self, granted: frozenset[str] | None) -> bytes:
        """The JSON of a `ListToolsResult` for this caller, encoded once per scope set."""
        key = granted if self.hide_unreachable else None
        cached = self._encoded.get(key)
        if cached is None:
            tools = [spec.tool_json for spec in self.visible(key)]
            cached = encode_utf8({"tools": tools}).encode()
            self._encoded.put(key, cached)
        return cached

"""FastAPI routes as MCP tools on the official `mcp` SDK, secured by `mcp_oauth_shim`."""

from mcp_bridge.bridge import MCPBridge
from mcp_bridge.dependencies import bearer_token, upstream_token, verified_caller
from mcp_bridge.tools import ToolNameClashError

__all__ = ["MCPBridge", "ToolNameClashError", "bearer_token", "upstream_token", "verified_caller"]

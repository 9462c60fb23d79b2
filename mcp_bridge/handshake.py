"""The `initialize` handshake answered without loading the SDK (MCP 2025-11-25 "Lifecycle").

Importing the `mcp` package costs more start-up time and memory than the bridge's whole tool
table, and every stateful client starts with `initialize`. Its answer depends only on the
server's identity and on the protocol revision negotiated, so the endpoint can give it from
pre-encoded bytes - provided the answer is exactly the SDK's. A test compares the two for
every revision; what this module is unsure about (`initialize_params_are_plain`) goes to the
SDK, so that the SDK accepts every session opened here when it later takes one over.
"""

from __future__ import annotations

from typing import Any

from mcp_bridge.encoding import encode_utf8

# Revisions reached through the initialize handshake, oldest first
# (`mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS`; a test keeps the two equal).
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]

# `clientInfo` members (schema `Implementation`) a plain client sends as strings.
_INFO_TEXT = ("title", "description", "websiteUrl")
# `ClientCapabilities` members made of objects only, at every depth (or absent).
_OBJECT_CAPABILITIES = ("sampling", "elicitation", "tasks")
# `ClientCapabilities` members that map names to free-form objects.
_MAP_CAPABILITIES = ("experimental", "extensions")


def negotiate(requested: str) -> str:
    """The revision the server answers with (2025-11-25 "Lifecycle", Version Negotiation)."""
    return requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION


def _objects_only(value: Any, depth: int = 0) -> bool:
    return value is None or (isinstance(value, dict) and depth <= 8 and all(_objects_only(v, depth + 1) for v in value.values()))


def _capabilities_are_plain(capabilities: Any) -> bool:
    if not isinstance(capabilities, dict):
        return False
    roots = capabilities.get("roots")
    maps = [capabilities.get(name) for name in _MAP_CAPABILITIES]
    return (
        (roots is None or (isinstance(roots, dict) and isinstance(roots.get("listChanged", False), bool)))
        and all(_objects_only(capabilities.get(name)) for name in _OBJECT_CAPABILITIES)
        and all(m is None or (isinstance(m, dict) and all(isinstance(v, dict) for v in m.values())) for m in maps)
    )


def initialize_params_are_plain(params: Any) -> bool:
    """True for `initialize` params that the SDK certainly accepts as they are.

    Deliberately narrower than the schema (no `_meta`, no icons, known shapes only): anything
    else is left to the SDK, which validates it and gives the error a client expects.
    """
    if not isinstance(params, dict) or "_meta" in params:
        return False
    info = params.get("clientInfo")
    return (
        isinstance(params.get("protocolVersion"), str)
        and _capabilities_are_plain(params.get("capabilities"))
        and isinstance(info, dict)
        and isinstance(info.get("name"), str)
        and isinstance(info.get("version"), str)
        and info.get("icons") is None
        and all(info.get(key) is None or isinstance(info.get(key), str) for key in _INFO_TEXT)
    )


class InitializeAnswer:
    """The `InitializeResult` of a server that serves tools only, encoded once per revision.

    Mirrors what the SDK's low-level `Server` built with a name, version, description and
    instructions (and tool handlers, no list-changed notifications) answers.
    """

    def __init__(self, *, name: str, version: str, description: str | None, instructions: str | None) -> None:
        server_info: dict[str, Any] = {"name": name, "version": version}
        if description is not None:
            server_info["description"] = description
        self._template: dict[str, Any] = {"capabilities": {"tools": {"listChanged": False}}, "serverInfo": server_info}
        if instructions is not None:
            self._template["instructions"] = instructions
        self._encoded: dict[str, bytes] = {}

    def result_bytes(self, negotiated: str) -> bytes:
        encoded = self._encoded.get(negotiated)
        if encoded is None:
            encoded = self._encoded[negotiated] = encode_utf8({"protocolVersion": negotiated, **self._template}).encode()
        return encoded

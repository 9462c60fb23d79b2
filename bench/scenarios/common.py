"""Helpers shared by the bridge scenarios: an MCP session on a server and the target call."""

from __future__ import annotations

from typing import Any

from bench import genapp
from bench.loadgen import Check, encode_request
from bench.mcpclient import Session
from bench.procs import Server


def call_ok(status: int, body: bytes) -> bool:
    """A successful tools/call: HTTP 200, the route's echo present, no tool or JSON-RPC error."""
    return (
        status == 200
        and genapp.TARGET_MARKER in body
        and b'"isError":true' not in body
        and b'"isError": true' not in body
        and b'"jsonrpc":"2.0","id":1,"error"' not in body
    )


def direct_ok(status: int, body: bytes) -> bool:
    return status == 201 and genapp.TARGET_MARKER in body


def direct_request(server: Server, extra_headers: list[tuple[str, str]] | None = None) -> bytes:
    """The baseline: the same route called with the same values as a plain HTTP POST."""
    return encode_request(
        "POST",
        genapp.target_direct_path(),
        host=f"127.0.0.1:{server.port}",
        headers=[("Content-Type", "application/json"), *(extra_headers or [])],
        body=genapp.target_direct_body(),
    )


def open_session(server: Server, extra_headers: list[tuple[str, str]] | None = None) -> tuple[Session, dict[str, Any]]:
    """Initialize an MCP session and find the target tool; returns (session, tool definition)."""
    sess = Session(port=server.port, extra_headers=list(extra_headers or []))
    sess.initialize()
    listed, _, _ = sess.rpc("tools/list", {})
    tools = {t["name"]: t for t in listed["result"]["tools"]}
    tool = tools.get(genapp.TARGET_OPERATION)
    if tool is None:
        matches = [n for n in tools if genapp.TARGET_OPERATION in n]
        if len(matches) != 1:
            raise RuntimeError(f"target tool {genapp.TARGET_OPERATION} not in tools/list ({len(tools)} tools)")
        tool = tools[matches[0]]
    return sess, tool


def call_request(sess: Session, tool: dict[str, Any]) -> bytes:
    """Pre-encoded tools/call of the target tool, after checking once that it succeeds."""
    params = {"name": tool["name"], "arguments": genapp.tool_arguments(tool.get("inputSchema", {}))}
    msg, raw, _ = sess.rpc("tools/call", params)
    if msg.get("result", {}).get("isError") or genapp.TARGET_MARKER not in raw:
        raise RuntimeError(f"tools/call of the target failed: {raw[:400]!r}")
    return sess.encode("tools/call", params)


CALL_CHECK: Check = call_ok
DIRECT_CHECK: Check = direct_ok

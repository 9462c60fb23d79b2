"""Just enough of an MCP Streamable HTTP client to set up a benchmark (not timed).

It runs the ``initialize`` handshake (MCP 2025-11-25, basic/lifecycle), keeps the
``Mcp-Session-Id`` when the server is stateful, and pre-encodes the JSON-RPC requests the load
generator then repeats. Answers may come as JSON or as one SSE event (both allowed by the
Streamable HTTP transport); :func:`decode` reads either.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import encode_request

PROTOCOL_VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
# The client's first message (2025-11-25 "Lifecycle").
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


@dataclass
class Session:
    port: int
    path: str = "/mcp"
    session_id: str | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def headers(self) -> list[tuple[str, str]]:
        h = [
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ]
        if self.session_id:
            h.append(("Mcp-Session-Id", self.session_id))
        return h + self.extra_headers

    def encode(self, method: str, params: dict[str, Any] | None, rid: int = 1) -> bytes:
        """Pre-encoded HTTP request carrying one JSON-RPC request."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg, separators=(",", ":")).encode()
        return encode_request("POST", self.path, host=self.host, headers=self.headers(), body=body)

    def post(self, message: dict[str, Any], timeout: float = 60.0) -> tuple[int, str, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            body = json.dumps(message, separators=(",", ":")).encode()
            conn.request("POST", self.path, body=body, headers=dict(self.headers()) | {"Host": self.host})
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheader("content-type", ""), data, {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()

    def rpc(self, method: str, params: dict[str, Any] | None = None, rid: int = 1) -> tuple[dict[str, Any], bytes, str]:
        """Send one request; return (decoded JSON-RPC message, raw body, content type)."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        status, ctype, data, _ = self.post(msg)
        if status != 200:
            raise RuntimeError(f"{method}: HTTP {status}: {data[:300]!r}")
        decoded = decode(data, ctype)
        if "error" in decoded:
            raise RuntimeError(f"{method}: JSON-RPC error {decoded['error']}")
        return decoded, data, ctype

    def initialize(self) -> dict[str, Any]:
        status, ctype, data, headers = self.post(INITIALIZE)
        if status != 200:
            raise RuntimeError(f"initialize: HTTP {status}: {data[:300]!r}")
        self.session_id = headers.get("mcp-session-id")
        result = decode(data, ctype)
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result


def decode(data: bytes, content_type: str) -> dict[str, Any]:
    """The JSON-RPC message in a JSON body or in the last ``data:`` event of an SSE body."""
    if "text/event-stream" in content_type or data.startswith((b"event:", b"data:", b":", b"id:")):
        events: list[str] = []
        current: list[str] = []
        for line in data.decode().splitlines():
            if line.startswith("data:"):
                current.append(line[5:].lstrip())
            elif line == "" and current:
                events.append("\n".join(current))
                current = []
        if current:
            events.append("\n".join(current))
        for ev in reversed(events):
            msg = json.loads(ev)
            if "result" in msg or "error" in msg:
                return msg
        raise ValueError("no JSON-RPC response in the event stream")
    return json.loads(data)

"""HTTP response of a route -> wire form of an MCP `CallToolResult` (MCP 2025-11-25 "Tools").

* 2xx JSON: the text, plus `structuredContent` when the tool declares an `outputSchema`
  (non-object results are wrapped as `{"result": ...}` to match the wrapped schema);
* 2xx image/*, audio/*: image / audio content, base64; other binary: an embedded resource;
* 3xx: reported with its status and never followed;
* 4xx/5xx: `isError` with the status and a bounded body stripped of control characters.

Results are built as plain dicts: the SDK path validates them once through `CallToolResult`.
The fast path needs bytes: `encode_response_result` writes the common case - a 2xx JSON
answer - without decoding and re-encoding it, splicing the route's own bytes in as
`structuredContent` once they parsed as JSON; it gives the same JSON value as encoding
`response_result`.
"""

from __future__ import annotations

import base64
import contextlib
import re
from json.encoder import encode_basestring_ascii
from typing import Any

import pydantic_core
from starlette.types import Scope

from mcp_bridge.encoding import encode_ascii
from mcp_bridge.tools import ToolSpec

MAX_ERROR_BODY = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEXTUAL = ("application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded")


def text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def error_result(text: str) -> dict[str, Any]:
    return text_result(text, is_error=True)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in headers if key.lower() == name), "")


def sanitize(body: bytes, limit: int = MAX_ERROR_BODY) -> str:
    """Printable, bounded text of a response body for an error message."""
    text = body[: limit * 4].decode("utf-8", errors="replace")
    text = _CONTROL.sub("", text)
    if len(text) > limit:
        text = text[:limit] + "... (truncated)"
    return text


def _is_text(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in _TEXTUAL or media_type.endswith(("+json", "+xml"))


def response_result(
    spec: ToolSpec, status: int, headers: list[tuple[bytes, bytes]], body: bytes, scope: Scope
) -> dict[str, Any]:
    media_type = _header(headers, b"content-type").split(";", 1)[0].strip().lower()

    if 300 <= status < 400:
        location = sanitize(_header(headers, b"location").encode("latin-1"), 500)
        return error_result(f"HTTP {status}: redirect to {location!r} was not followed")
    if status >= 400 or status < 200:
        detail = sanitize(body)
        return error_result(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")

    if not body:
        return {"content": [], "isError": False}
    if media_type == "application/json" or media_type.endswith("+json"):
        result = text_result(body.decode("utf-8", errors="replace"))
        if spec.has_output_schema:
            # Strict JSON text only (RFC 8259: UTF-8 without a BOM, no NaN), as the fast path
            # reads it; anything else is text only.
            with contextlib.suppress(ValueError):
                value = _strict_json(body.decode("utf-8"))
                if spec.wrap_output:
                    result["structuredContent"] = {"result": value}
                elif isinstance(value, dict):
                    result["structuredContent"] = value
        return result
    if media_type.startswith(("image/", "audio/")):  # image/svg+xml too: an image, not text
        kind = media_type.split("/", 1)[0]  # MCP's content types are named "image" and "audio"
        data = base64.b64encode(body).decode("ascii")
        return {"content": [{"type": kind, "data": data, "mimeType": media_type}], "isError": False}
    if _is_text(media_type) or not media_type:
        return text_result(body.decode("utf-8", errors="replace"))
    resource = {"uri": _resource_uri(scope), "mimeType": media_type, "blob": base64.b64encode(body).decode("ascii")}
    return {"content": [{"type": "resource", "resource": resource}], "isError": False}


def is_error_result(result: dict[str, Any] | bytes) -> bool:
    """Whether a `CallToolResult` (a dict, or the bytes this module encodes) has `isError: true`.

    In the bytes `isError` comes right after `content`, whose text is JSON-escaped, so its first
    occurrence is the flag itself, never a key inside `structuredContent`.
    """
    if isinstance(result, dict):
        return result.get("isError") is True
    at = result.find(b'"isError":')
    return at >= 0 and result.startswith(b"true", at + 10)


def encode_result(result: dict[str, Any]) -> bytes:
    """The JSON bytes of a result built here (ASCII: escapes as `json.dumps` writes them)."""
    return encode_ascii(result).encode("ascii")


def _strict_json(text: str) -> Any:
    """The value of strict JSON text (RFC 8259), read by the parser the SDK reads messages with
    (pydantic-core, as `asgi_io.read_message` does): ValueError for NaN and Infinity (§6), a lone
    surrogate escape such as `"\\ud800"` (no Unicode text: no UTF-8 encoder, the SDK's
    included, could write the value out again) and nesting past 200 levels."""
    return pydantic_core.from_json(text, allow_inf_nan=False)


def _json_success_bytes(spec: ToolSpec, body: bytes) -> bytes | None:
    """The result of a 2xx JSON body as bytes, or None to take the general path."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head = b'{"content":[{"type":"text","text":' + encode_basestring_ascii(text).encode("ascii") + b'}],"isError":false'
    if spec.has_output_schema:
        try:
            value = _strict_json(text)
        except ValueError:
            return head + b"}"  # not JSON after all: text only, as `response_result` gives it
        if spec.wrap_output:
            return head + b',"structuredContent":{"result":' + body + b"}}"
        if isinstance(value, dict):
            return head + b',"structuredContent":' + body + b"}"
    return head + b"}"


def encode_response_result(
    spec: ToolSpec, status: int, headers: list[tuple[bytes, bytes]], body: bytes, scope: Scope
) -> bytes:
    """`response_result` as JSON bytes."""
    if 200 <= status < 300 and body:
        media_type = _header(headers, b"content-type").split(";", 1)[0].strip().lower()
        if media_type == "application/json" or media_type.endswith("+json"):
            encoded = _json_success_bytes(spec, body)
            if encoded is not None:
                return encoded
    return encode_result(response_result(spec, status, headers, body, scope))


def _resource_uri(scope: Scope) -> str:
    host = _header(scope["headers"], b"host")
    raw = scope["raw_path"].decode("ascii")
    query = scope.get("query_string", b"").decode("ascii")
    return f"{scope.get('scheme', 'http')}://{host or 'localhost'}{raw}" + (f"?{query}" if query else "")

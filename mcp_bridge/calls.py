"""A `tools/call` -> one in-process ASGI request to the FastAPI app -> an MCP `CallToolResult`.

No network hop and no HTTP client: the request is handed straight to the app's ASGI callable,
so it passes the app's middleware and dependencies exactly like a request from outside.

Safety rules:
* the arguments are checked against the tool's `inputSchema` (and path convertors) before a
  request is built (`arguments.py`); a mismatch is a tool error naming the argument;
* path arguments are percent-encoded into `raw_path`; a value that would add or climb path
  segments ("/", ".", "..") is refused;
* the tool runs its own route or nothing: the request is made only when the first route of
  the app's live route table that fully matches it (path and method, as the router decides,
  including the MCP endpoint and the shim's routes mounted after the tools were built) is the
  tool's own route (`routes.OwnRoute`) - an argument can never reach another route;
* tool arguments only fill what the operation declares; they can never set Authorization,
  Cookie, Host or forwarded headers, and no header value may carry CR/LF;
* the client's own headers reach the route only through the allow-list (`forward_headers`);
* redirects are reported, never followed.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlencode

from starlette.types import ASGIApp, Message, Scope

from mcp_bridge.arguments import ArgumentError, scalar_text
from mcp_bridge.asgi_io import body_then_wait
from mcp_bridge.encoding import to_utf8_bytes
from mcp_bridge.results import encode_response_result, encode_result, error_result, response_result
from mcp_bridge.tools import ToolSpec, header_forbidden

if TYPE_CHECKING:
    import httpx

__all__ = ["ArgumentError", "RouteAnswer", "build_request", "call_tool", "run_request", "unknown_tool"]

# What a route answered: status (-1: the body passed MAX_RESPONSE_BYTES), headers, body.
RouteAnswer = tuple[int, list[tuple[bytes, bytes]], bytes]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_ASGI = {"version": "3.0", "spec_version": "2.4"}
# RFC 3986 §3.3 pchar minus "%" (so a literal "%" is encoded, never taken as an escape), and
# minus ";" and ",": a server behind `http_client` (Tomcat, some proxies) may read "..;" as "..",
# so both are sent percent-encoded.
_PCHAR = ":@!$&'()*+=-._~"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A lone surrogate: JSON allows it, UTF-8 cannot carry it (the only text `str.encode` refuses).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _path_value(name: str, value: Any, allow_slash: bool) -> str:
    text = scalar_text(value)
    if text in ("", ".", ".."):
        raise ArgumentError(f"path argument {name!r} must not be empty, '.' or '..'")
    if not allow_slash and "/" in text:
        raise ArgumentError(f"path argument {name!r} must not contain '/'")
    if allow_slash and any(seg in (".", "..") for seg in text.split("/")):
        raise ArgumentError(f"path argument {name!r} must not contain '.' or '..' segments")
    if _CONTROL.search(text):
        raise ArgumentError(f"path argument {name!r} contains control characters")
    if not text.isascii() and _SURROGATE.search(text):
        raise ArgumentError(f"path argument {name!r} is not valid Unicode text (a lone surrogate)")
    return text


def _header_value(name: str, value: Any) -> bytes:
    text = scalar_text(value)
    if any(c in text for c in "\r\n\x00"):
        raise ArgumentError(f"header argument {name!r} must not contain CR, LF or NUL")
    try:
        return text.encode("latin-1", errors="strict")
    except UnicodeEncodeError:
        raise ArgumentError(f"header argument {name!r} must be Latin-1 text (RFC 9110 section 5.5)") from None


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(name)}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(name)}"; filename="{quote(name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}".encode()


def _query_value(value: Any) -> str:
    # What urlencode writes (quote_plus), without the call for integers and booleans.
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    return quote_plus(scalar_text(value))


def build_request(
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    origin: Scope,
    forward_headers: frozenset[bytes],
) -> tuple[Scope, bytes]:
    """The ASGI scope and body for calling `spec` with `arguments` on behalf of `origin`.

    `forward_headers`: the lower-case names of the client's headers that reach the route.
    Raises ArgumentError when the arguments do not fit the tool or the request would not be
    served by the tool's own route.
    """
    try:
        return _build_request(spec, arguments, origin, forward_headers)
    except UnicodeEncodeError:
        # A lone surrogate (valid in JSON, not in UTF-8) in a query, form or body argument.
        raise ArgumentError("an argument holds text that is not valid Unicode (a lone surrogate)") from None


def _build_request(
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    origin: Scope,
    forward_headers: frozenset[bytes],
) -> tuple[Scope, bytes]:
    arguments = spec.checks(arguments)

    path_values: dict[str, str] = {}
    query: list[str] = []
    headers: list[tuple[bytes, bytes]] = []
    form_fields: list[tuple[str, str]] = []
    files: list[tuple[str, bytes]] = []
    body: Any = None

    # A JSON object body spread into the arguments (the common case): its fields pass as they
    # are, in one step; only the other arguments go through the per-argument rules below.
    body_keys = spec.body_keys
    body_fields = {k: v for k, v in arguments.items() if k in body_keys} if body_keys else {}
    has_body = bool(body_fields)
    rest = arguments if not body_fields else [k for k in arguments if k not in body_keys]

    specs_arguments = spec.arguments
    for key in rest:
        value = arguments[key]
        arg = specs_arguments.get(key)
        if arg is None:
            raise ArgumentError(f"unknown argument {key!r}")
        where = arg.location
        if where == "path":
            if type(value) is int:
                path_values[arg.wire_name] = str(value)  # digits and "-": nothing to check or encode
            else:
                path_values[arg.wire_name] = _path_value(key, value, arg.wire_name in spec.slash_params)
        elif value is None:
            continue
        elif where == "query":
            prefix = arg.query_key
            if isinstance(value, list):
                query.extend(prefix + _query_value(v) for v in value)
            else:
                query.append(prefix + _query_value(value))
        elif where == "header":
            if header_forbidden(arg.wire_name):
                raise ArgumentError(f"header {arg.wire_name!r} cannot be set by a tool argument")
            headers.append((arg.wire_name.lower().encode("latin-1"), _header_value(key, value)))
        elif where == "body":
            body, has_body = value, True
        elif where == "form":
            # A list is repeated fields of one name, as forms send it (and FastAPI reads it).
            for item in value if isinstance(value, list) else (value,):
                form_fields.append((arg.wire_name, item if isinstance(item, str) else json.dumps(item)))
            has_body = True
        elif where == "file":
            for item in value if isinstance(value, list) else (value,):  # a list: one part per file
                try:
                    files.append((arg.wire_name, base64.b64decode(scalar_text(item), validate=True)))
                except (ValueError, TypeError) as exc:
                    raise ArgumentError(f"argument {key!r} must be base64") from exc
            has_body = True

    # One pass over the template: a value that looks like "{other}" stays a value.
    decoded = list(spec.path_parts)
    raw = list(decoded)
    for i in range(1, len(decoded), 2):
        value = path_values[decoded[i]]
        decoded[i] = value
        raw[i] = value if value.isascii() and value.isdigit() else quote(value, safe=_PCHAR)
    root_path = origin.get("root_path", "")

    content: bytes = b""
    content_type: bytes | None = None
    if has_body:
        if spec.body_content_type == "multipart/form-data":
            content, content_type = _multipart(form_fields, files)
        elif spec.body_content_type == "application/x-www-form-urlencoded":
            content, content_type = urlencode(form_fields).encode(), b"application/x-www-form-urlencoded"
        else:
            content = to_utf8_bytes(body_fields if body is None else body)
            content_type = b"application/json"

    request_headers = [(name, value) for name, value in origin["headers"] if name == b"host" or name in forward_headers]
    request_headers.extend(headers)
    request_headers.append((b"accept", b"*/*"))
    if content_type is not None:
        request_headers.append((b"content-type", content_type))
        request_headers.append((b"content-length", str(len(content)).encode()))

    scope: Scope = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": spec.method,
        "scheme": origin.get("scheme", "http"),
        "server": origin.get("server"),
        "client": origin.get("client"),
        "root_path": root_path,
        "path": root_path + "".join(decoded),
        "raw_path": (root_path + "".join(raw)).encode("ascii"),
        "query_string": "&".join(query).encode("ascii") if query else b"",
        "headers": request_headers,
    }
    if "state" in origin:
        scope["state"] = dict(origin["state"])
    own_route = spec.own_route
    if own_route is not None and not own_route.serves(scope):
        raise ArgumentError(_not_served(spec, own_route.served))
    return scope, content


def _not_served(spec: ToolSpec, route_exists: bool) -> str:
    where = f"{spec.method} {spec.path_template}"
    if not route_exists:
        return f"the app no longer serves this tool's route ({where}); nothing was called"
    if spec.path_params:
        names = ", ".join(repr(name) for name in spec.path_params)
        return (
            f"path argument(s) {names} would have the request served by a different route "
            f"than this tool's own ({where}); nothing was called"
        )
    return f"a different route than this tool's own ({where}) would serve the request; nothing was called"


async def run_request(app: ASGIApp, scope: Scope, body: bytes) -> RouteAnswer:
    """Call `app` once; return status, headers and the (bounded) body.

    An answer the app did not finish (it failed, or returned, before its last body message) is
    a 500 without its partial body: a server would cut the connection, and no HTTP client would
    take the part as a response.
    """
    status = 0
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    size = 0
    finished = False

    async def send(message: Message) -> None:
        nonlocal status, headers, size, finished
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise _ResponseTooLarge
            chunks.append(chunk)
            finished = not message.get("more_body", False)

    try:
        await app(scope, body_then_wait(body), send)
    except _ResponseTooLarge:
        return -1, headers, b""
    except Exception:  # noqa: BLE001 - any failure of the app is its 500, as a server would answer
        pass  # ServerErrorMiddleware has already sent (finished) its 500 when it re-raises: kept
    if not finished:
        return 500, [], b""
    return status, headers, b"".join(chunks)


class _ResponseTooLarge(Exception):
    """The route's answer passed MAX_RESPONSE_BYTES: stop collecting it."""


_NOT_SENT_OVER_HTTP = frozenset({b"host", b"content-length", b"connection"})


async def run_request_over(client: httpx.AsyncClient, scope: Scope, body: bytes) -> RouteAnswer:
    """Send the request over `client` (an `httpx.AsyncClient` whose `base_url` is the API).

    FastAPI-MCP's `http_client` option: for an API served elsewhere. The path keeps the
    bridge's percent-encoding (`raw_path`), redirects are not followed, the body is bounded.
    """
    import httpx

    base = client.base_url
    raw = base.raw_path.split(b"?", 1)[0].rstrip(b"/") + scope["raw_path"]
    if scope["query_string"]:
        raw += b"?" + scope["query_string"]
    url = base.copy_with(raw_path=raw)
    headers = [(k, v) for k, v in scope["headers"] if k not in _NOT_SENT_OVER_HTTP]
    request = client.build_request(scope["method"], url, content=body or None, headers=headers)
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except httpx.HTTPError as exc:
        return 502, [(b"content-type", b"text/plain")], f"the API could not be reached: {type(exc).__name__}".encode()
    try:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                return -1, [], b""
            chunks.append(chunk)
    except httpx.HTTPError as exc:  # the connection closed or stalled mid-answer: no answer
        return 502, [(b"content-type", b"text/plain")], f"the API's answer was cut off: {type(exc).__name__}".encode()
    finally:
        await response.aclose()
    return response.status_code, list(response.headers.raw), b"".join(chunks)


def _observed_as_part_of(origin: Scope, scope: Scope, app: ASGIApp) -> None:
    """Let FastAPI treat the call as part of the MCP request when that request was not traced.

    FastAPI (>= 0.16x) traces a request unless its scope already says whether it is observed;
    when the MCP request came through the same app without a trace (telemetry off), the call
    says so too, which spares FastAPI asking its providers again. A traced MCP request leaves
    the call to be traced on its own, as before.
    """
    if origin.get("app") is app and "fastapi.telemetry" not in origin:
        scope["fastapi.telemetry"] = None


async def call_tool(
    app: ASGIApp,
    spec: ToolSpec,
    arguments: Mapping[str, Any] | None,
    origin: Scope,
    forward_headers: frozenset[bytes],
    http_client: httpx.AsyncClient | None = None,
    *,
    encoded: bool = False,
) -> dict[str, Any] | bytes:
    """Run one tool call; the wire form of a `CallToolResult` (never raises for app errors).

    `encoded=True` gives the result as its JSON bytes (what the endpoint sends): a 2xx JSON
    answer of the route is then spliced in without being decoded and encoded again.
    """
    try:
        scope, body = build_request(spec, arguments or {}, origin, forward_headers)
    except ArgumentError as exc:
        result = error_result(f"Invalid arguments for tool {spec.name}: {exc}")
    else:
        if http_client is None:
            _observed_as_part_of(origin, scope, app)
            status, headers, content = await run_request(app, scope, body)
        else:
            status, headers, content = await run_request_over(http_client, scope, body)
        if status != -1:
            if encoded:
                return encode_response_result(spec, status, headers, content, scope)
            return response_result(spec, status, headers, content, scope)
        result = error_result(f"The response of {spec.name} exceeded {MAX_RESPONSE_BYTES} bytes")
    return encode_result(result) if encoded else result


def unknown_tool(name: str) -> dict[str, Any]:
    """The tool error for a name the bridge does not serve (bounded: the name is the client's)."""
    return error_result(f"Unknown tool: {name[:200]}")

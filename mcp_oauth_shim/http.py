"""Small HTTP helpers shared by the endpoint handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from .errors import ascii_description

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version",
    "Access-Control-Max-Age": "86400",
}
_CORS_RAW = [(b"access-control-allow-origin", b"*")]


async def read_body_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def set_cookie(response: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    """Add an HttpOnly, SameSite=Lax, Path=/ cookie (RFC 6265bis); ``value`` must be base64url."""
    attributes = f"{name}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=lax"
    if secure:
        attributes += "; Secure"
    response.raw_headers.append((b"set-cookie", attributes.encode("latin-1")))


def delete_cookie(response: Response, name: str, *, secure: bool) -> None:
    set_cookie(response, name, '""', max_age=0, secure=secure)


class ParameterError(ValueError):
    """Request parameters that no endpoint accepts; ``description`` is safe to show."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


MAX_PARAMETERS = 100


def parse_form(body: bytes) -> dict[str, str]:
    """An x-www-form-urlencoded body as a dict; RFC 6749 §3.1 forbids repeated parameters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParameterError("The request body is not UTF-8.")
    return _single(text)


def single_params(request: Request) -> dict[str, str]:
    """Query parameters as a dict, refusing repeats (RFC 6749 §3.1)."""
    # Parsed straight from the raw query, as Starlette would, without building a multidict.
    return _single(request.scope["query_string"].decode("latin-1"))


def _single(text: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
    except ValueError:
        raise ParameterError(f"More than {MAX_PARAMETERS} parameters.")
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise ParameterError(ascii_description(f"Parameter {key[:40]} is repeated."))
        result[key] = value
    return result


def with_cors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Open CORS for endpoints browser-based MCP clients call directly (no cookies involved)."""

    async def wrapped(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={**CORS_HEADERS, "Access-Control-Allow-Methods": "GET, POST, OPTIONS"})
        response = await endpoint(request)
        response.raw_headers.extend(_CORS_RAW)  # a simple request needs only this one
        return response

    return wrapped

"""Small HTTP helpers shared by the endpoint handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from .forms import ParameterError, location, parse_form, parse_query

__all__ = ["ParameterError", "parse_form", "single_params", "read_body_limited", "set_cookie", "delete_cookie", "with_cors", "redirect"]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version",
    "Access-Control-Max-Age": "86400",
}
_CORS_RAW = [(b"access-control-allow-origin", b"*")]
NO_STORE_RAW = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


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


def single_params(request: Request) -> dict[str, str]:
    """Query parameters as a dict, refusing repeats (RFC 6749 §3.1)."""
    # Parsed straight from the raw query, as Starlette would, without building a multidict.
    return parse_query(request.scope["query_string"].decode("latin-1"))


def with_cors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Open CORS for endpoints browser-based MCP clients call directly (no cookies involved)."""

    async def wrapped(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={**CORS_HEADERS, "Access-Control-Allow-Methods": "GET, POST, OPTIONS"})
        response = await endpoint(request)
        response.raw_headers.extend(_CORS_RAW)  # a simple request needs only this one
        return response

    return wrapped


def redirect(url: str, status_code: int = 302) -> Response:
    """A redirect that is never cached (RFC 6749 §4.1.2, §10.12); ``Location`` as starlette's
    ``RedirectResponse`` writes it, without re-quoting URLs that need none."""
    response = Response(status_code=status_code)
    response.raw_headers += [(b"location", location(url).encode("latin-1")), *NO_STORE_RAW]
    return response

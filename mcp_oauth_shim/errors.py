"""OAuth error answers, in the three shapes the RFCs define.

The error classes are authlib's (``authlib.oauth2.rfc6749.errors`` and friends); this module
only renders them: as a JSON body (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1), as a
redirect to a client's validated redirect URI (RFC 6749 §4.1.2.1 with RFC 9207 ``iss``), or as
an HTML page when there is no URI we may redirect to.
"""

from __future__ import annotations

import html

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7591.errors import (
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from starlette.responses import HTMLResponse, JSONResponse, Response

from .forms import append_query
from .http import NO_STORE, redirect
from .rfc6750 import sanitize_description

__all__ = [
    "AccessDeniedError",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidGrantError",
    "InvalidRedirectURIError",
    "InvalidRequestError",
    "InvalidScopeError",
    "OAuth2Error",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "invalid_target",
    "json_error",
    "redirect_error",
    "html_error",
]

def invalid_target(description: str) -> OAuth2Error:
    """RFC 8707 §2: the requested resource is not one we serve."""
    return OAuth2Error(error="invalid_target", description=description, status_code=400)


def oauth_error(error: str, description: str, status_code: int = 400) -> OAuth2Error:
    return OAuth2Error(error=error, description=ascii_description(description), status_code=status_code)


def json_error(err: OAuth2Error, *, headers: dict[str, str] | None = None) -> Response:
    """RFC 6749 §5.2 JSON error body (also RFC 7591 §3.2.2 and RFC 7009 §2.2.1)."""
    body: dict[str, str] = {"error": err.error}
    if err.description:
        body["error_description"] = err.description
    all_headers = {**NO_STORE, **(headers or {})}
    if err.error == "invalid_client" and err.status_code == 401:
        # RFC 6749 §5.2: a 401 must carry the authentication scheme the client used.
        all_headers.setdefault("WWW-Authenticate", 'Basic realm="mcp-oauth-shim"')
    return JSONResponse(body, status_code=err.status_code or 400, headers=all_headers)


def redirect_error(err: OAuth2Error, redirect_uri: str, *, state: str | None, issuer: str) -> Response:
    """RFC 6749 §4.1.2.1 error redirect; only ever called with a validated redirect URI."""
    params = {"error": err.error}
    if err.description:
        params["error_description"] = err.description
    if state is not None:
        params["state"] = state
    params["iss"] = issuer  # RFC 9207 §2: on error responses too.
    return redirect(append_query(redirect_uri, params))


def html_error(err: OAuth2Error, *, status_code: int | None = None) -> Response:
    """Shown to the person in the browser when there is no trusted redirect URI to report to."""
    title = html.escape(err.error or "error")
    detail = html.escape(err.description or "")
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign-in error</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}"
        "code{background:#eee;padding:.1rem .3rem}</style></head><body>"
        f"<h1>Sign-in could not continue</h1><p><code>{title}</code></p><p>{detail}</p>"
        "<p>Close this window and start the sign-in again from your application.</p></body></html>"
    )
    return HTMLResponse(page, status_code=status_code or err.status_code or 400, headers=page_headers())


def page_headers() -> dict[str, str]:
    """Headers for every HTML page the shim shows: not cacheable, not frameable, no referrer."""
    return {
        # Cache-Control alone: Pragma (RFC 9111 §5.4, deprecated) adds nothing for a page.
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the
        # consent POST, which the same-origin check must refuse.
        "Referrer-Policy": "same-origin",
    }


def ascii_description(text: str) -> str:
    """RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, the same
    set as RFC 6750 §3, so one sanitiser serves both."""
    return sanitize_description(text)


PAGE_HEADERS_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in page_headers().items()]

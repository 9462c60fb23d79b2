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

from .endpoints.base import NO_STORE, redirect
from .forms import append_query
from .pages import PAGE_HEADERS_RAW, load_template, page_headers
from .rfc6750 import sanitize_description

__all__ = [
    "PAGE_HEADERS_RAW",
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
    "html_error",
    "invalid_target",
    "json_error",
    "page_headers",
    "redirect_error",
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
    """RFC 6749 §4.1.2.1 error redirect, with RFC 9207 ``iss``.

    Only ever called with a redirect URI that is trusted, not merely registered: one the
    person approved on the consent page, or one the operator allow-listed (RFC 9700 §4.11.2).
    """
    params = {"error": err.error}
    description = error_description(err)
    if description:
        params["error_description"] = ascii_description(description)
    if state is not None:
        params["state"] = state
    params["iss"] = issuer  # RFC 9207 §2: on error responses too.
    return redirect(append_query(redirect_uri, params))


_ERROR_PAGE = load_template("error.html")


def html_error(
    err: OAuth2Error,
    *,
    status_code: int | None = None,
    headline: str = "Sign-in could not continue",
    explanation: str = "This server could not complete the sign-in.",
) -> Response:
    """An error shown to the person in the browser, when there is no trusted redirect URI to
    report it to (RFC 6749 §4.1.2.1 first paragraph, RFC 9700 §4.11.2).

    Every text is escaped; the page links nowhere, so it cannot be used to bounce the browser
    on to a URI nobody approved.
    """
    page = _ERROR_PAGE.format(
        headline=html.escape(headline),
        explanation=html.escape(explanation),
        detail=html.escape(error_description(err) or "no further details."),
        error=html.escape(err.error or "error"),
    )
    return HTMLResponse(page, status_code=status_code or err.status_code or 400, headers=page_headers())


def error_description(err: OAuth2Error) -> str:
    """The human-readable text of an error: its description, or the one authlib derives (for
    ``unsupported_response_type`` it names the response type)."""
    return err.description or err.get_error_description() or ""


# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, the same set as
# RFC 6750 §3, so one sanitiser serves both.
ascii_description = sanitize_description


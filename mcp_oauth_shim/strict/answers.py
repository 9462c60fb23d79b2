"""How the endpoints answer strict mode's refusals: 429 for a rate limit, 503 when the store
cannot be reached; both ``temporarily_unavailable`` (RFC 6749 §4.1.2.1 and §5.2: "temporary
overloading") with ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3) and ``Cache-Control: no-store``.

The ``*_error`` builders give the :class:`OAuth2Error` for an endpoint that renders it another
way (the authorization endpoint shows a page; copy the headers onto it); the ``*_response``
functions give the JSON answer of the registration, token and revocation endpoints, the
``*_page`` functions the HTML error page of the browser-facing ones (authorization, consent,
callback).
"""

from __future__ import annotations

from authlib.oauth2.base import OAuth2Error
from starlette.responses import Response

from ..errors import html_error, json_error, oauth_error
from .limits import RateDecision
from .mode import StrictModeUnavailable

__all__ = [
    "rate_limited_error",
    "rate_limited_page",
    "rate_limited_response",
    "unavailable_error",
    "unavailable_page",
    "unavailable_response",
]


def rate_limited_error(decision: RateDecision) -> OAuth2Error:
    return oauth_error(
        "temporarily_unavailable",
        f"Too many requests; try again in {decision.retry_after_seconds} s.",
        status_code=429,
    )


def rate_limited_response(decision: RateDecision) -> Response:
    """429 JSON with ``Retry-After`` for a :class:`RateDecision` that is not ``allowed``."""
    return json_error(rate_limited_error(decision), headers=decision.headers)


def unavailable_error(exc: StrictModeUnavailable) -> OAuth2Error:
    return oauth_error(exc.error, exc.description, status_code=exc.status_code)


def unavailable_response(exc: StrictModeUnavailable) -> Response:
    """503 JSON with ``Retry-After`` for :class:`StrictModeUnavailable`."""
    return json_error(unavailable_error(exc), headers=exc.headers)


def rate_limited_page(decision: RateDecision) -> Response:
    """The 429 error page with ``Retry-After``, for a person's browser."""
    page = html_error(rate_limited_error(decision), status_code=429)
    page.headers.update(decision.headers)
    return page


def unavailable_page(exc: StrictModeUnavailable) -> Response:
    """The 503 error page with ``Retry-After``, for a person's browser."""
    page = html_error(unavailable_error(exc), status_code=exc.status_code)
    page.headers.update(exc.headers)
    return page

"""What every outbound httpx client of the shim has in common: no cookies.

The shim calls machines (the IdP, hosts of client metadata documents, an upstream MCP server)
on behalf of many users through one shared client. A cookie that one answer sets must never
ride along on a later request, for another user least of all, so the shim's own clients keep
no cookies at all (:func:`cookieless_jar`).

There is a second reason. For every 3xx answer httpx prepares the request it would send next
(``response.next_request``), even with redirects off, and adds the jar's cookies to it; a
``Set-Cookie`` value with a byte outside ASCII then raises ``UnicodeEncodeError`` inside the
call. With no jar that cannot happen in our clients; a client the operator passes in keeps its
own jar, so callers catch :data:`TRANSPORT_ERRORS`, not only ``httpx.HTTPError``.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request

import httpx

# httpx's own errors, and the encoding error a cookie jar of an injected client can raise.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, UnicodeError)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Accept no cookie and return none (RFC 6265 §5.3 and §5.4 both answer "no")."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


def cookieless_jar() -> http.cookiejar.CookieJar:
    """A cookie jar that stays empty, for ``httpx.AsyncClient(cookies=...)``."""
    return http.cookiejar.CookieJar(policy=_NoCookies())

"""What every outbound httpx client of the shim has in common: no cookies, bounded bodies.

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
from typing import Any

import httpx

# httpx's own errors, and the encoding error a cookie jar of an injected client can raise.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, UnicodeError)


def cookieless_jar() -> http.cookiejar.CookieJar:
    """A cookie jar that stays empty, for ``httpx.AsyncClient(cookies=...)``: its policy allows
    no domain, so every cookie is refused (RFC 6265 §5.3 and §5.4 both answer "no")."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def outbound_client(timeout: httpx.Timeout | float, **options: Any) -> httpx.AsyncClient:
    """An httpx client for the shim's own calls: no cookies, no redirects followed, and no
    proxy or TLS settings taken from the environment (the operator passes a client for those)."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, cookies=cookieless_jar(), **options)


async def read_at_most(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body of a streamed ``response``, or ``None`` as soon as it passes ``max_bytes``:
    the rest is never read, so an endless answer costs no more than the bound."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)

"""RFC 8707 resource indicators: validate what the client asks for, translate for the IdP.

MCP clients send ``resource=<the MCP server URL>`` (MCP 2025-06-18 and later). Many IdPs refuse
an unknown ``resource`` (``invalid_target``) or want Auth0's ``audience`` instead, so the client's
value never travels upstream: it is checked here, and the configured audience is sent instead.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from .config import Upstream

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _canonical(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    # RFC 8707 §2: no fragment component, not even an empty one ("...#": urlsplit drops it).
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "#" in url or "@" in parts.netloc:
        return None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    return scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


# The configured resource is one of a few URLs, compared on every request that names one.
_canonical_configured = functools.lru_cache(maxsize=64)(_canonical)


def resource_matches(requested: str, configured: str) -> bool:
    """Does the client's ``resource`` name our protected resource?

    Compared as URLs: scheme and host case, a default port and a trailing slash do not matter
    (RFC 3986 §6.2.3). A query is tolerated (RFC 8707 §2 allows one; some clients add it). A
    parent of the configured resource is accepted too, because clients of the 2025-03-26
    revision name the server's origin; the token is still bound to the configured audience.
    """
    if requested == configured:
        return True
    if not isinstance(requested, str) or len(requested) > 2048:
        return False
    want = _canonical_configured(configured)
    got = _canonical(requested)
    if want is None or got is None or got[:3] != want[:3]:
        return False
    return got[3] == want[3] or want[3].startswith(got[3] + "/") or got[3] == ""


def audience_params(upstream: Upstream, default_audience: str) -> dict[str, str]:
    """What to send the IdP, on authorize and token requests, to get tokens for this API."""
    # ``audience_param`` names the parameter ("resource", RFC 8707, or Auth0's "audience"), or "none".
    if upstream.audience_param == "none":
        return {}
    return {upstream.audience_param: upstream.audience or default_audience}

"""URL and host policy for the URLs an operator configures (issuer, endpoints, public URL).

One rule everywhere: an absolute ``https`` URL with a host and no fragment; plain ``http`` only
when the host is loopback (RFC 8252 §8.3: traffic that never leaves the machine), which is what
development and tests use. Client-supplied URLs follow stricter rules of their own: redirect
URIs in :mod:`.redirects`, client ID metadata document URLs in :mod:`.cimd`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "service_url_problem"]


def is_loopback_host(host: str | None) -> bool:
    """Does ``host`` name this machine? Loopback IP literals (IPv4-mapped IPv6 included,
    brackets allowed), ``localhost`` and names under ``.localhost`` (RFC 6761 §6.3)."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def service_url_problem(url: object, *, query_allowed: bool = True) -> str | None:
    """What is wrong with ``url`` as a configured service URL, or ``None`` if nothing is.

    The answer completes a sentence such as "issuer must ...", so callers name the setting.
    """
    if not isinstance(url, str):
        return "be a string"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "be a valid absolute http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "be an absolute http(s) URL"
    if parts.fragment or url.endswith("#"):
        return "not contain a fragment"
    if not query_allowed and (parts.query or url.endswith("?")):
        return "not contain a query"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "use https (plain http is only allowed on loopback, for development)"
    return None

"""Redirect URI policy: what a client may register, and whether a request matches it.

- RFC 6749 §3.1.2: absolute URI, no fragment; compared as exact strings (OAuth 2.1 §2.3.1).
- RFC 8252 §7.3: for loopback IP redirect URIs the port is ignored, since native apps pick an
  ephemeral port at run time; §7.1 private-use URI schemes for native apps; §8.3 loopback http.
- OAuth 2.0 Security BCP §4.1: no open redirectors, no pattern matching.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

from .urls import is_loopback_host

MAX_REDIRECT_URI_LENGTH = 2000

# Schemes that run code or read local data in a browser, or are not redirect targets at all.
FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "view-source", "ws", "wss", "ftp"}
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
# Encoded dots, slashes and backslashes only serve to confuse path comparison downstream.
_SUSPICIOUS_ENCODINGS = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
# Anything outside printable ASCII, and the backslash some parsers read as a slash.
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]|\\")


class RedirectURIError(ValueError):
    """Why a redirect URI is refused; the message is safe to show to the client."""


def check_registrable(uri: object, *, allowed: Iterable[str] = ()) -> str:
    """Validate one redirect URI a client wants to register; returns it unchanged.

    ``allowed`` lists URIs the operator accepts even though the policy would refuse them
    (plain http to an intranet host, say).
    """
    if not isinstance(uri, str):
        raise RedirectURIError("Each redirect URI must be a string.")
    if uri in allowed:
        return uri
    parts = _parse(uri)  # an http(s) URI without a host is refused there
    scheme = parts.scheme
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise RedirectURIError(
            f"Redirect URI {_show(uri)} uses plain http to a non-loopback host; use https "
            "(or ask the operator to allow-list it)."
        )
    if scheme not in ("http", "https") and "." not in scheme and scheme not in _KNOWN_APP_SCHEMES:
        # RFC 8252 §7.1: private-use schemes should be reverse domain names; we also accept the
        # short schemes shipped by well-known MCP clients.
        raise RedirectURIError(
            f"Redirect URI scheme {scheme!r} is not allowed; use https, loopback http, or a "
            "reverse-domain private-use scheme (RFC 8252 section 7.1)."
        )
    return uri


# Private-use schemes of MCP clients that do not follow the reverse-domain advice.
_KNOWN_APP_SCHEMES = frozenset({"cursor", "vscode", "vscode-insiders", "windsurf", "zed", "claude", "raycast", "goose"})


def matches(requested: str, registered: Sequence[str]) -> bool:
    """Does the redirect URI of an authorization request match a registration?

    Exact string comparison, except that for loopback http the port may differ
    (RFC 8252 §7.3), so ``http://127.0.0.1/cb`` also matches ``http://127.0.0.1:53124/cb``.
    """
    if not isinstance(requested, str) or len(requested) > MAX_REDIRECT_URI_LENGTH:
        return False
    if requested in registered:
        return _parse_or_none(requested) is not None
    parts = _parse_or_none(requested)
    if parts is None or parts.scheme != "http" or not is_loopback_host(parts.hostname):
        return False
    want = _without_port(parts)
    for candidate in registered:
        other = _parse_or_none(candidate)
        if other is not None and other.scheme == "http" and _without_port(other) == want:
            return True
    return False


def _without_port(parts: SplitResult) -> tuple[str, str, str, str]:
    host = (parts.hostname or "").lower()
    return host, parts.path or "/", parts.query, parts.username or ""


@functools.lru_cache(maxsize=1024)  # every authorize and token request checks the same few URIs
def _parse_or_none(uri: str) -> SplitResult | None:
    try:
        return _parse(uri)
    except RedirectURIError:
        return None


def _parse(uri: str) -> SplitResult:
    if not uri or len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise RedirectURIError("A redirect URI must be 1 to 2000 characters long.")
    if _UNPRINTABLE.search(uri):
        raise RedirectURIError(f"Redirect URI {_show(uri)} contains whitespace, control or non-ASCII characters.")
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise RedirectURIError(f"Redirect URI {_show(uri)} is not a valid URI.") from None
    scheme = parts.scheme
    # urlsplit lower-cases the scheme; the policy is about what the client wrote.
    if not _SCHEME.match(uri.split(":", 1)[0]):
        raise RedirectURIError(f"Redirect URI {_show(uri)} must be absolute with a lower-case scheme.")
    if scheme in FORBIDDEN_SCHEMES:
        raise RedirectURIError(f"Redirect URI scheme {scheme!r} is not allowed.")
    if "#" in uri:
        raise RedirectURIError("A redirect URI must not contain a fragment (RFC 6749 section 3.1.2).")
    if "@" in parts.netloc:
        raise RedirectURIError("A redirect URI must not contain user information.")
    if _SUSPICIOUS_ENCODINGS.search(uri):
        raise RedirectURIError(f"Redirect URI {_show(uri)} contains encoded dots, slashes or NULs.")
    segments = parts.path.split("/")
    if ".." in segments or "." in segments:
        raise RedirectURIError(f"Redirect URI {_show(uri)} contains dot segments.")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise RedirectURIError(f"Redirect URI {_show(uri)} has no host.")
        if port == 0:
            raise RedirectURIError(f"Redirect URI {_show(uri)} has port 0.")
    return parts


def _show(uri: str) -> str:
    """A redirect URI quoted for an error message, truncated and made printable."""
    shown = "".join(ch if 0x20 < ord(ch) < 0x7F and ch not in '"\\' else "?" for ch in uri[:120])
    return "'" + shown + "'"

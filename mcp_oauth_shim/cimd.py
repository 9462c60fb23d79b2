"""Client ID metadata documents: clients whose ``client_id`` is an HTTPS URL.

Follows draft-ietf-oauth-client-id-metadata-document (the revision the MCP 2025-11-25 and
2026-07-28 specs cite is -00; section numbers below are -02's, whose rules are the same):

- §3 the client identifier URL: https, a path, no dot segments, no fragment, no userinfo;
  compared as a plain string (RFC 3986 §6.2.1), so we never normalise it.
- §4 the document: JSON object whose ``client_id`` equals the URL exactly; §4.1 no shared
  secrets (we go further and accept only public clients, ``token_endpoint_auth_method: none``).
- §5 fetched with 200 only and redirects not followed; §5.1 a failed fetch aborts the request.
- §5.2 cached per HTTP caching (RFC 9111) within our own bounds; errors and invalid documents
  are never cached.
- §8.6 SSRF: never fetch from special-use addresses (RFC 6890); §8.7 read at most 5 KB.

SSRF defence in depth: the URL is checked as text, the host is resolved once, every address
it resolves to must be public, and the connection goes to the address we checked (the URL's
host is replaced by that IP; ``Host`` and TLS SNI / certificate checks keep the name), so a
DNS answer that changes between check and connect (rebinding) cannot redirect the fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .json_documents import DocumentProblem, JSONDocumentError, is_json_media_type, json_object
from .memo import BoundedMemo, SingleFlight
from .outbound import TRANSPORT_ERRORS, outbound_client, read_at_most
from .pages import SPOOFING_CHARACTERS
from .redirects import RedirectURIError, check_registrable
from .ssrf import (
    BlockedAddress,
    IPAddress,
    Resolver,
    UnresolvableHost,
    checked_address,
    is_public_address,
    system_resolver,
)
from .urls import is_loopback_host

__all__ = [
    "ClientMetadataDocument",
    "ClientMetadataDocuments",
    "ClientMetadataError",
    "Resolver",
    "cache_lifetime",
    "is_metadata_client_id",
    "is_public_address",
    "parse_document",
    "system_resolver",
]

MAX_CLIENT_ID_LENGTH = 2000
MAX_URI_LENGTH = 2000
# §4.1: methods based on a secret shared with the AS cannot be established by a document.
SHARED_SECRET_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})

# RFC 3986 §3.2: authority = host [":" port]; userinfo is refused before this is applied.
# Brackets only around an IPv6 literal (checked by ipaddress afterwards), digits only in a port.
_AUTHORITY = re.compile(r"(?P<host>\[(?P<ipv6>[0-9A-Za-z:.%]+)\]|[^\[\]:]*)(?::(?P<port>[0-9]*))?")
_AUTHORITY_END = re.compile(r"[/?#]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DNS_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?)*\.?$")
# The last label decides whether a WHATWG/inet_aton parser reads the host as IPv4:
# "2130706433", "0x7f.1" and "0177.0.0.1" all mean 127.0.0.1 to some resolver.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


class ClientMetadataError(Exception):
    """A URL client_id that cannot be used; ``description`` says why (ASCII, safe to show).

    Per RFC 6749 §4.1.2.1 an authorization request with such a client_id is answered to the
    user, not redirected (we have no validated redirect URI); at the token endpoint it is
    ``invalid_client``.
    """

    error = "invalid_client"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class ClientMetadataDocument(BaseModel):
    """The client metadata we use from a fetched document (RFC 7591 §2 names)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client_id: str
    client_name: str | None = Field(default=None, max_length=200)
    client_uri: str | None = Field(default=None, max_length=MAX_URI_LENGTH)
    logo_uri: str | None = Field(default=None, max_length=MAX_URI_LENGTH)
    redirect_uris: tuple[str, ...] = Field(min_length=1)
    token_endpoint_auth_method: str = "none"
    grant_types: tuple[str, ...] = ("authorization_code",)
    response_types: tuple[str, ...] = ("code",)
    scope: str | None = Field(default=None, max_length=MAX_URI_LENGTH)
    application_type: Literal["native", "web"] | None = None  # OpenID Connect Dynamic Client Registration §2

    @property
    def host(self) -> str:
        """The client_id's host, which the consent page should show (draft §8.5)."""
        return urlsplit(self.client_id).hostname or ""


def is_metadata_client_id(client_id: str, *, allow_http_loopback: bool = False) -> bool:
    """Is ``client_id`` a well-formed client identifier URL (draft §3)?

    ``False`` for opaque client_ids (ours from registration) and for malformed URLs;
    :meth:`ClientMetadataDocuments.get` says what is wrong with a malformed one.
    """
    try:
        _parse_client_id_url(client_id, allow_http_loopback=allow_http_loopback)
    except ClientMetadataError:
        return False
    return True


@dataclass(frozen=True)
class _ClientIdURL:
    url: httpx.URL
    host: str  # lower-case name or IP text without brackets
    port: int
    host_header: str  # the URL's authority exactly as written
    literal: IPAddress | None  # set when the host is an IP literal


def _parse_client_id_url(client_id: object, *, allow_http_loopback: bool) -> _ClientIdURL:
    """Check a client identifier URL as text (draft §3); no network access."""
    if not isinstance(client_id, str) or not client_id:
        raise ClientMetadataError("client_id is missing.")
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise ClientMetadataError(f"client_id URL is longer than {MAX_CLIENT_ID_LENGTH} characters.")
    # Anything a lenient parser would repair (spaces, backslashes, non-ASCII) can make two
    # parsers disagree about the host; refuse instead of guessing.
    if not client_id.isascii() or any(c <= " " or c in "\\\x7f" for c in client_id):
        raise ClientMetadataError("client_id URL contains whitespace, control, backslash or non-ASCII characters.")
    if client_id.startswith("https://"):
        scheme = "https"
    elif client_id.startswith("http://") and allow_http_loopback:
        scheme = "http"
    else:
        raise ClientMetadataError("client_id URL must use the https scheme (draft section 3).")
    if "#" in client_id:
        raise ClientMetadataError("client_id URL must not contain a fragment (draft section 3).")
    if _BAD_PERCENT.search(client_id):
        raise ClientMetadataError(
            "client_id URL has a '%' that does not start a percent-encoded octet (RFC 3986 section 2.1)."
        )
    # The authority is checked as text first: urlsplit raises ValueError on malformed IPv6
    # brackets (and accepts some ports it should not), and its exact behaviour varies by version.
    authority = _AUTHORITY_END.split(client_id[len(scheme) + 3 :], maxsplit=1)[0]
    if "@" in authority:
        raise ClientMetadataError("client_id URL must not contain a username or password (draft section 3).")
    shape = _AUTHORITY.fullmatch(authority)
    if shape is None:
        raise ClientMetadataError(
            "client_id URL has a malformed host or port (RFC 3986 section 3.2.2: a name, an IPv4 "
            "address or an IPv6 address in brackets, then optionally ':' and a port number)."
        )
    bracketed = shape["ipv6"] is not None
    host = (shape["ipv6"] if bracketed else shape["host"]).lower()
    if not host:
        raise ClientMetadataError("client_id URL has no host.")
    port_text = shape["port"]
    if port_text and not (len(port_text) <= 5 and 0 < int(port_text) <= 65535):
        raise ClientMetadataError("client_id URL has an invalid port (1 to 65535).")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    literal = _host_literal(host, bracketed=bracketed)
    try:
        parts = urlsplit(client_id)
        url = httpx.URL(client_id)
    except (ValueError, httpx.InvalidURL):
        raise ClientMetadataError("client_id URL is not a valid URL (RFC 3986).") from None
    if scheme == "http" and not is_loopback_host(host):
        raise ClientMetadataError("client_id URL must use https; http is only accepted for loopback hosts in development.")
    if not parts.path or parts.path == "/":
        raise ClientMetadataError("client_id URL must have a path, such as https://example.com/client.json (draft section 3).")
    for segment in parts.path.split("/"):
        if unquote(segment) in (".", ".."):
            raise ClientMetadataError("client_id URL must not contain '.' or '..' path segments (draft section 3).")
    return _ClientIdURL(url=url, host=host, port=port, host_header=authority, literal=literal)


def _host_literal(host: str, *, bracketed: bool) -> IPAddress | None:
    if bracketed:
        if "%" in host:
            # Zone ids ("%25eth0"): a remote client has no business naming our interfaces.
            raise ClientMetadataError("client_id URL has an invalid IPv6 address.")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ClientMetadataError("client_id URL has an invalid IPv6 address.") from None
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            return ipaddress.IPv4Address(host)
        except ValueError:
            raise ClientMetadataError(
                "client_id URL host is an IP address in a non-canonical form (decimal, octal or hex)."
            ) from None
    if not _DNS_NAME.match(host):
        raise ClientMetadataError("client_id URL host is not a valid DNS name.")
    return None


@dataclass(eq=False, kw_only=True)
class ClientMetadataDocuments:
    """Fetches, validates and caches client ID metadata documents.

    One instance per shim; safe to share between concurrent requests (one fetch per URL at
    a time, later callers wait for it).

    ``http``: an ``httpx.AsyncClient`` to send requests with (tests inject a MockTransport;
    the request URL then carries the checked IP and ``Host`` the name). When ``None``, a
    short-lived client without proxies or keep-alive is used for each fetch.
    ``allow_http_loopback``: accept ``http://`` client_ids on loopback hosts and loopback
    addresses at all; for tests and local development only (draft §8.6).
    Cache lifetimes come from ``Cache-Control: max-age`` (minus ``Age``) or ``Expires``,
    clamped to [``min_cache_seconds``, ``max_cache_seconds``]; ``default_cache_seconds`` when
    the response says nothing. The lower bound also applies to ``no-store``/``no-cache``
    (draft §5.2 lets the AS set bounds): one login flow sees one document and a client cannot
    make us fetch on every request.
    """

    http: httpx.AsyncClient | None = None
    allow_http_loopback: bool = False
    max_bytes: int = 5 * 1024
    timeout: float = 5.0
    max_cache_seconds: int = 86400
    min_cache_seconds: int = 60
    default_cache_seconds: int = 300
    cache_size: int = 1024
    resolver: Resolver | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not 0 <= self.min_cache_seconds <= self.default_cache_seconds <= self.max_cache_seconds:
            raise ValueError("need 0 <= min_cache_seconds <= default_cache_seconds <= max_cache_seconds")
        self._cache: BoundedMemo[str, ClientMetadataDocument] = BoundedMemo(self.cache_size)
        self._inflight: SingleFlight[str, ClientMetadataDocument] = SingleFlight()

    async def get(self, client_id: str) -> ClientMetadataDocument:
        """The validated document for ``client_id``, from cache or freshly fetched.

        Raises :class:`ClientMetadataError` with a description of what is wrong.
        """
        target = _parse_client_id_url(client_id, allow_http_loopback=self.allow_http_loopback)
        cached = self._cache.get(client_id, self.clock())
        if cached is not None:
            return cached
        # One fetch per URL at a time; a caller that gives up (client disconnected) does not
        # cancel the others' fetch.
        return await self._inflight.run(client_id, lambda: self._fetch_and_cache(client_id, target))

    async def _fetch_and_cache(self, client_id: str, target: _ClientIdURL) -> ClientMetadataDocument:
        try:
            async with asyncio.timeout(self.timeout):
                address = await self._checked_address(target)
                document, lifetime = await self._download(client_id, target, address)
        except (TimeoutError, httpx.TimeoutException):
            raise ClientMetadataError(
                f"Fetching the client metadata document took longer than {self.timeout:g} seconds."
            ) from None
        # §5.2: only valid documents reach this point, so errors are never cached.
        ttl = self.default_cache_seconds if lifetime is None else min(max(lifetime, self.min_cache_seconds), self.max_cache_seconds)
        if ttl > 0:
            self._cache.put(client_id, document, self.clock() + ttl)
        return document

    async def _checked_address(self, target: _ClientIdURL) -> IPAddress:
        """Resolve once and insist every answer is allowed (draft §8.6, RFC 6890)."""
        try:
            resolver = self.resolver or system_resolver
            return await checked_address(
                target.host, target.port, literal=target.literal, resolver=resolver, allow_loopback=self.allow_http_loopback
            )
        except UnresolvableHost as exc:
            raise ClientMetadataError(f"The client_id URL's host {exc}.") from None
        except BlockedAddress:
            # The address itself is not echoed: it may describe our internal network.
            raise ClientMetadataError(
                "The client_id URL's host resolves to a private, loopback, link-local or other "
                "special-use address, which this server does not fetch from (draft section 8.6)."
            ) from None

    async def _download(
        self, client_id: str, target: _ClientIdURL, address: IPAddress
    ) -> tuple[ClientMetadataDocument, float | None]:
        # Pin the connection to the checked address; Host and SNI keep the name so virtual
        # hosting and certificate verification still apply to it.
        url = target.url.copy_with(host=str(address))
        headers = {
            "Host": target.host_header,
            "Accept": "application/json",
            # A compressed body could expand far beyond max_bytes once decoded.
            "Accept-Encoding": "identity",
            "User-Agent": "mcp-oauth-shim (client ID metadata document fetcher)",
        }
        pinned_name = target.url.scheme == "https" and target.literal is None
        extensions: dict[str, Any] = {"sni_hostname": target.host} if pinned_name else {}
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = self.http
                if http is None:  # one client per fetch: no proxies from the environment, no keep-alive
                    fresh = outbound_client(self.timeout, limits=httpx.Limits(max_keepalive_connections=0))
                    http = await stack.enter_async_context(fresh)
                response = await stack.enter_async_context(
                    http.stream("GET", url, headers=headers, extensions=extensions, follow_redirects=False, timeout=self.timeout)
                )
                self._check_response_head(response)
                body = await read_at_most(response, self.max_bytes)
        except httpx.TimeoutException:
            raise
        except TRANSPORT_ERRORS as exc:
            raise ClientMetadataError(f"Could not fetch the client metadata document ({type(exc).__name__}).") from None
        if body is None:
            raise self._too_large()
        document = parse_document(client_id, body, allow_http_loopback=self.allow_http_loopback)
        return document, cache_lifetime(response.headers, now=time.time())

    def _check_response_head(self, response: httpx.Response) -> None:
        status = response.status_code
        if 300 <= status < 400:
            raise ClientMetadataError(
                f"The client_id URL answered with a redirect (HTTP {status}); redirects are not "
                "followed, serve the document at the client_id URL itself (draft section 5)."
            )
        if status != 200:
            raise ClientMetadataError(
                f"The client_id URL answered HTTP {status}; the document must be served with 200 (draft section 5)."
            )
        if not is_json_media_type(response.headers.get("content-type")):
            raise ClientMetadataError(
                "The client metadata document must be served as application/json (draft section 4)."
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ClientMetadataError("The client metadata document must be served uncompressed.")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()

    def _too_large(self) -> ClientMetadataError:
        return ClientMetadataError(
            f"The client metadata document is larger than {self.max_bytes} bytes (draft section 8.7)."
        )


def parse_document(client_id: str, body: bytes, *, allow_http_loopback: bool = False) -> ClientMetadataDocument:
    """Validate a fetched document against its client_id URL (draft §4, §4.1) and the
    properties MCP requires of it (``client_id``, ``client_name``, ``redirect_uris``)."""
    try:
        # The fetcher checked the media type and bounded the size before reading it all.
        data = json_object(body, max_bytes=len(body), check_media_type=False)
    except JSONDocumentError as exc:
        if exc.problem is DocumentProblem.NOT_AN_OBJECT:
            raise ClientMetadataError("The client metadata document must be a JSON object.") from None
        raise ClientMetadataError("The client metadata document is not valid JSON.") from None
    if "client_id" not in data:
        raise ClientMetadataError("The client metadata document has no client_id.")
    if data["client_id"] != client_id:
        raise ClientMetadataError(
            "The client_id in the client metadata document does not exactly equal the URL it was "
            "fetched from (draft section 4)."
        )
    for secret_field in ("client_secret", "client_secret_expires_at"):
        if secret_field in data:
            raise ClientMetadataError(
                f"The client metadata document must not contain {secret_field} (draft section 4.1)."
            )
    method = data.get("token_endpoint_auth_method", "none")
    if isinstance(method, str) and method in SHARED_SECRET_METHODS:  # a list or object is unhashable
        raise ClientMetadataError(
            f"token_endpoint_auth_method {method} relies on a shared secret, which a client metadata "
            "document cannot establish (draft section 4.1); use none."
        )
    if method != "none":
        readable = isinstance(method, str) and method.isascii() and method.isprintable() and len(method) <= 40
        shown = method if readable else "(this value)"
        raise ClientMetadataError(
            f"token_endpoint_auth_method {shown} is not supported: this server accepts only public "
            "clients (token_endpoint_auth_method none) with PKCE."
        )
    try:
        document = ClientMetadataDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise ClientMetadataError(f"The client metadata document is invalid: {where}: {first['msg']}.") from None
    for name, needed in (("grant_types", "authorization_code"), ("response_types", "code")):
        if needed not in getattr(document, name):
            raise ClientMetadataError(f"The client metadata document's {name} must include {needed}.")
    if document.client_name is None or not document.client_name.strip():
        # MCP (client ID metadata documents) lists client_name among the properties a document
        # must include, and the consent page names the client by it.
        raise ClientMetadataError("The client metadata document has no client_name; it must name the client.")
    if SPOOFING_CHARACTERS.search(document.client_name):
        # The name is shown on the consent page: no line breaks, control or bidi override
        # characters that could make it read as something else.
        raise ClientMetadataError("The client metadata document's client_name contains control or formatting characters.")
    for name in ("client_uri", "logo_uri"):
        value = getattr(document, name)
        if value is not None and (problem := _web_url_problem(value, allow_http=allow_http_loopback)) is not None:
            raise ClientMetadataError(f"The client metadata document's {name} {problem}.")
    for uri in document.redirect_uris:
        try:
            check_registrable(uri)
        except RedirectURIError as exc:
            raise ClientMetadataError(f"The client metadata document lists a redirect URI we refuse: {exc}") from None
    return document


def _web_url_problem(value: str, *, allow_http: bool) -> str | None:
    """What is wrong with a ``client_uri`` or ``logo_uri`` (RFC 7591 §2: URLs of web pages the
    consent page may show), or ``None``. Never raises: ``urlsplit`` does on malformed brackets
    and ports, so those are caught and reported."""
    if not value.isascii() or any(c <= " " or c in "\\\x7f" for c in value):
        return "contains whitespace, control, backslash or non-ASCII characters"
    if _BAD_PERCENT.search(value):
        return "has a '%' that does not start a percent-encoded octet"
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed or out-of-range port
    except ValueError:
        return "is not a valid URL (malformed host, IPv6 brackets or port)"
    if not (parts.scheme == "https" or (allow_http and parts.scheme == "http")):
        return "must be an https URL"
    if not parts.hostname:
        return "must be an https URL with a host"
    if "@" in parts.netloc:
        return "must not contain a username or password"
    return None


def cache_lifetime(headers: Mapping[str, str], *, now: float) -> float | None:
    """Freshness lifetime in seconds per RFC 9111 §4.2.1, or ``None`` if the response gives none.

    ``max-age`` wins over ``Expires``; ``Age`` is subtracted (§4.2.3); ``no-store`` and
    ``no-cache`` mean 0; an invalid value means stale (0), as §4.2.1 and §5.3 ask.
    """
    directives: dict[str, str | None] = {}
    for item in headers.get("cache-control", "").split(","):
        name, _, value = item.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip().strip('"') if value else None
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    age = _int_or_none(headers.get("age")) or 0
    if "max-age" in directives:
        max_age = _int_or_none(directives["max-age"])
        return 0.0 if max_age is None else float(max(max_age - age, 0))
    if "expires" in headers:
        expires = _http_date(headers["expires"])
        if expires is None:
            return 0.0
        date = _http_date(headers.get("date", "")) or now
        return max(expires - date - age, 0.0)
    return None


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None

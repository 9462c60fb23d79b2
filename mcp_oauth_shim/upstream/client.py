"""Talking to the identity provider: discovery, the token endpoint, revocation, JSON fetches.

One pooled HTTP client per upstream, bounded timeouts on every call, and every failure mapped
to an :class:`UpstreamError` that the endpoints turn into a 502/504 JSON answer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any

import httpx

from ..config import Upstream
from ..json_documents import JSONDocumentError, json_object
from ..logs import without_password
from ..memo import SingleFlight
from ..outbound import outbound_client
from ..telemetry import idp_call
from .client_auth import ClientAuthentication, client_authentication
from .framing import HTTPError, RawResponse
from .pool import ConnectionPool
from .transport import HttpxTransport, Transport

logger = logging.getLogger(__name__)

#: How long a discovery document is used before it is read again.
DISCOVERY_TTL = 3600.0
#: After a failed re-read, how long the document held is used before the next attempt.
DISCOVERY_RETRY_AFTER = 5.0
# A JSON document from an IdP larger than this is not metadata, it is an attack or a bug.
MAX_JSON_BYTES = 1024 * 1024


class UpstreamError(Exception):
    """The IdP is down, slow or answered something unusable. Never the client's fault."""

    def __init__(
        self, status_code: int, error: str, description: str, *, reason: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description
        #: What went wrong in a few words, for a report that already names the URL
        #: ("HTTP 404", "timed out", "not JSON"); the description when not given.
        self.reason = reason or description.rstrip(".")
        #: Seconds after which the IdP said it would answer again (its ``Retry-After``).
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """The response header fields that pass this failure on: ``Retry-After`` when known."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class UpstreamMetadata:
    """The endpoints the shim needs, from discovery or configuration."""

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    jwks_uri: str | None = None
    introspection_endpoint: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


# The fields of UpstreamMetadata that name endpoints, in discovery documents and in Upstream.
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri", "introspection_endpoint")


def default_http_client(timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return outbound_client(httpx.Timeout(timeout, connect=min(timeout, 5.0)), limits=limits)


class UpstreamClient:
    """The shim's confidential client at the IdP (one per :class:`Upstream`).

    Its :class:`~.transport.Transport` is chosen here, once: the keep-alive pool by default,
    or ``http`` when the caller brings an httpx client (proxies, custom TLS, tests).
    Assigning :attr:`http` later switches to that client. ``clock`` (seconds, monotonic)
    decides when the discovery document is read again.
    """

    def __init__(
        self, upstream: Upstream, *, http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.upstream = upstream
        self.transport: Transport = (
            ConnectionPool(timeout=upstream.timeout) if http is None else HttpxTransport(http, deadline=upstream.timeout)
        )
        self.clock = clock
        self._metadata: UpstreamMetadata | None = None
        self._read_again_at = 0.0  # clock time after which the document is read again
        self._discovery: SingleFlight[str, UpstreamMetadata] = SingleFlight()

    @property
    def http(self) -> httpx.AsyncClient | None:
        """The httpx client requests travel on, or ``None`` on the built-in pool."""
        transport = self.transport
        return transport.client if isinstance(transport, HttpxTransport) else None

    @http.setter
    def http(self, client: httpx.AsyncClient) -> None:
        self.transport = HttpxTransport(client, deadline=self.upstream.timeout)

    async def aclose(self) -> None:
        """Close the connections; the client stays usable (the pool reconnects on demand)."""
        await self.transport.aclose()

    # -- discovery -------------------------------------------------------------------------

    async def metadata(self) -> UpstreamMetadata:
        """Discovered (or configured) endpoints, cached for :data:`DISCOVERY_TTL`; concurrent
        callers share one fetch.

        When reading the document again fails (the IdP is down, slow, or answers something
        unusable), the document held keeps serving, as the JWKS does: the endpoints of an IdP
        that is away have not moved, and what needs the IdP fails on its own call, while what
        does not (a bearer check against cached keys, this server's metadata) goes on. The
        next attempt comes :data:`DISCOVERY_RETRY_AFTER` later. Only a shim that never read
        the document sees the failure. While the document is being read again, only the
        request that started the read waits for it (at most the IdP timeout); the others go on
        with the document held.
        """
        held = self._metadata
        if held is not None and (self.clock() < self._read_again_at or len(self._discovery)):
            return held
        return await self._discovery.run("metadata", self._discover)

    def _rediscover(self) -> None:
        """An endpoint named by discovery answered 404 or 410: the IdP may have moved it
        (its discovery document changed while the shim ran). The next request reads the
        document again rather than trust the cached one for the rest of the hour; concurrent
        callers still share one fetch."""
        if self.upstream.metadata_url is not None:
            self._read_again_at = 0.0

    def rediscover_if_gone(self, error: UpstreamError) -> None:
        """The same for a request made on :attr:`transport` directly (the identity lookups):
        when ``error`` is such an answer (its ``reason`` ``HTTP 404`` or ``HTTP 410``)."""
        if error.reason in _GONE:
            self._rediscover()

    async def _discover(self) -> UpstreamMetadata:
        held = self._metadata
        try:
            meta = await self._read_metadata()
        except UpstreamError as exc:
            if held is None:
                raise
            self._read_again_at = self.clock() + DISCOVERY_RETRY_AFTER
            logger.warning("discovery failed, keeping the document read before: %s", exc.description)
            return held
        self._metadata, self._read_again_at = meta, self.clock() + DISCOVERY_TTL
        return meta

    async def _read_metadata(self) -> UpstreamMetadata:
        up = self.upstream
        # Without discovery, the configured endpoints (which always win) are the whole document.
        doc: Mapping[str, Any] = {"issuer": up.issuer}
        if up.metadata_url is not None:
            try:
                doc = await self.get_json(up.metadata_url)
            except UpstreamError as exc:
                # Name the document: "could not be reached" alone does not say what was asked.
                where = "" if up.metadata_url in exc.description else f" (reading {up.metadata_url})"
                raise UpstreamError(
                    exc.status_code, exc.error, exc.description.rstrip(".") + where + ".", retry_after=exc.retry_after
                ) from None
        return self.metadata_from(doc)

    def metadata_from(self, doc: Mapping[str, Any]) -> UpstreamMetadata:
        """The endpoints ``doc`` (a discovery document) and the configuration name together, or
        :class:`UpstreamError` (502) when the shim could not use them."""
        up = self.upstream
        issuer = doc.get("issuer")
        # RFC 8414 §3.3 / OIDC Discovery §4.3: the issuer in the document must be the one we
        # asked about, or an attacker-controlled document could redirect our users.
        if up.issuer is not None and issuer != up.issuer:
            named = f"The identity provider's metadata names issuer {issuer!r}, not the configured {up.issuer!r}."
            raise UpstreamError(502, "server_error", named)
        endpoints: dict[str, str | None] = {}
        for key in _ENDPOINTS:
            value = getattr(up, key, None) or doc.get(key)  # the configured one wins
            if value is not None and not isinstance(value, str):
                raise UpstreamError(502, "server_error", f"The identity provider's metadata has a bad {key}.")
            endpoints[key] = value
        authorization, token = endpoints.pop("authorization_endpoint"), endpoints.pop("token_endpoint")
        if not authorization or not token:
            lacks = "The identity provider's metadata lacks authorization_endpoint or token_endpoint."
            raise UpstreamError(502, "server_error", lacks)
        issuer = issuer if isinstance(issuer, str) else up.issuer
        return UpstreamMetadata(issuer, authorization_endpoint=authorization, token_endpoint=token, raw=dict(doc), **endpoints)

    # -- HTTP ------------------------------------------------------------------------------

    async def get_json(self, url: str, *, what: str = "answer", max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
        """GET a JSON object from the IdP (``what`` names it in errors: "key set", ...);
        see :func:`get_json`."""
        with idp_call(self.operation_of(url)):
            try:
                return await get_json(self.transport, url, what=what, max_bytes=max_bytes)
            except UpstreamError as exc:
                self.rediscover_if_gone(exc)
                raise

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST a form with the shim's client authentication added (RFC 6749 §2.3.1).

        Returns the IdP's status and JSON object; a non-JSON answer is an :class:`UpstreamError`.
        """
        auth = self.client_authentication
        with idp_call(self.operation_of(url)) as call:
            response = await exchange(self.transport, "POST", url, body=auth.body(form), headers=auth.headers)
            call.status(response.status)
        if f"HTTP {response.status}" in _GONE:
            self._rediscover()
        busy = busy_error(response)
        if busy is not None:
            raise busy
        if not response.body and 200 <= response.status < 300:
            return response.status, {}
        # Error answers of some IdPs are declared text/plain while holding JSON; RFC 6749 §5.1
        # and §5.2 make the body JSON whatever the header says.
        return response.status, _json_object(response, url, check_media_type=False)

    def operation_of(self, url: str) -> str:
        """What a request to ``url`` is, named by the discovered endpoint it is (``token``,
        ``jwks``, ``introspection``, ``revoke``, ``userinfo``, ``discovery``; else ``other``):
        the label of its timing, never the URL itself."""
        meta = self._metadata
        if meta is not None and url == meta.token_endpoint:
            return "token"  # every login and refresh: answered before the list below is built
        if url == self.upstream.metadata_url:
            return "discovery"
        if meta is None:
            return "other"
        endpoints = (
            ("token", meta.token_endpoint),
            ("jwks", meta.jwks_uri),
            ("introspection", meta.introspection_endpoint),
            ("revoke", meta.revocation_endpoint),
            ("userinfo", meta.raw.get("userinfo_endpoint")),
        )
        return next((operation for operation, endpoint in endpoints if url == endpoint), "other")

    @cached_property
    def client_authentication(self) -> ClientAuthentication:
        """The form and header fields that authenticate the shim, encoded once."""
        up = self.upstream
        return client_authentication(up.token_auth_method, up.client_id, up.client_secret)


async def exchange(
    transport: Transport, method: str, url: str, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
) -> RawResponse:
    """One request to the IdP over ``transport``; every failure an :class:`UpstreamError`
    (504 when the deadline passed, 502 otherwise)."""
    try:
        return await transport.request(method, url, body=body, headers=headers)
    except TimeoutError:
        logger.warning("identity provider timed out: %s %s", method, without_password(url))
        raise UpstreamError(
            504, "temporarily_unavailable", "The identity provider did not answer in time.", reason="timed out"
        ) from None
    except HTTPError as exc:
        logger.warning("identity provider unreachable: %s %s (%s)", method, without_password(url), exc)
        raise UpstreamError(
            502, "temporarily_unavailable", "The identity provider could not be reached.", reason=f"could not connect ({exc})"
        ) from None


async def get_json(
    transport: Transport, url: str, *, what: str = "answer", max_bytes: int = MAX_JSON_BYTES
) -> dict[str, Any]:
    """GET a JSON object from the IdP: the one policy for its documents (discovery, the JWKS,
    the doctor's reads; :mod:`mcp_oauth_shim.json_documents`): status 200, declared JSON, at
    most ``max_bytes``, an object. Every failure is an :class:`UpstreamError`."""
    response = await exchange(transport, "GET", url, headers=_GET_JSON_HEADERS)
    if response.status != 200:
        raise busy_error(response) or UpstreamError(
            502, "server_error", f"The identity provider answered {response.status} for {url}.", reason=f"HTTP {response.status}"
        )
    return _json_object(response, url, what=what, max_bytes=max_bytes)


_GET_JSON_HEADERS = (("Accept", "application/json"),)
# The reasons of answers that say an endpoint is not there (any more): RFC 9110 §15.5.5, §15.5.11.
_GONE = frozenset({"HTTP 404", "HTTP 410"})

#: The longest wait passed on from an IdP's ``Retry-After``: a client told to wait an hour
#: by a confused IdP would give up on the server altogether.
MAX_RETRY_AFTER = 300


def busy_error(response: RawResponse) -> UpstreamError | None:
    """The IdP asks to come back later: 429 (RFC 6585 §4) or 503 (RFC 9110 §15.6.4). Passed
    on as 503 ``temporarily_unavailable`` with the IdP's ``Retry-After`` (RFC 9110 §10.2.3),
    so clients back off rather than count the IdP's load against this server; else None."""
    if response.status != 429 and response.status != 503:
        return None
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    busy = "The identity provider is busy; try again later."
    return UpstreamError(503, "temporarily_unavailable", busy, reason=f"HTTP {response.status}", retry_after=retry_after)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> int | None:
    """RFC 9110 §10.2.3: ``Retry-After`` is delay-seconds or an HTTP-date; the delay in whole
    seconds, within ``[0, MAX_RETRY_AFTER]``, or None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = int(value[:12])
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 §5.6.7: HTTP-dates are in GMT
            return None
        seconds = math.ceil(when.timestamp() - (time.time() if now is None else now))
    return max(0, min(seconds, MAX_RETRY_AFTER))


def _json_object(
    response: RawResponse, url: str, *, what: str = "answer", max_bytes: int = MAX_JSON_BYTES, check_media_type: bool = True
) -> dict[str, Any]:
    content_type = response.headers.get("content-type")
    try:
        return json_object(response.body, max_bytes=max_bytes, content_type=content_type, check_media_type=check_media_type)
    except JSONDocumentError as exc:
        problem = exc.problem.value  # "is not JSON", ...
        unusable = f"The identity provider's {what} from {url} {problem}."
        raise UpstreamError(502, "server_error", unusable, reason=problem.removeprefix("is ")) from None

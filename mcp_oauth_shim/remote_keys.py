"""Signature keys of a party the operator trusts, fetched from its ``jwks_uri`` and cached.

Used for JWT assertions signed by someone other than the shim's own IdP: an enterprise IdP's
ID-JAGs, a machine client's ``private_key_jwt`` assertions. The transport is injected as a
:data:`JsonFetcher` (``await fetch(url) -> JSON object``), so tests and the token endpoint
decide how to reach the network; :func:`httpx_json_fetcher` is the ordinary one.

Fetch policy (RFC 7517 key sets rotate; RFC 7515 §4.1.4 ``kid`` names the key):

- only URLs from the operator's configuration are ever fetched, never one an assertion names;
- the keys are kept ``max_age`` seconds, then fetched again; if that fails, the old keys keep
  serving (an IdP hiccup must not lock everyone out);
- an assertion naming a ``kid`` we do not hold triggers a refetch (rotation), at most once per
  ``unknown_kid_refetch_after`` seconds, so made-up ``kid`` values cannot make the shim hammer
  the key owner; concurrent lookups share one fetch (:class:`~mcp_oauth_shim.memo.SingleFlight`);
- without a ``jwks_uri``, the issuer's metadata is discovered (OpenID Connect Discovery 1.0
  §4 ``/.well-known/openid-configuration`` appended to the issuer, then RFC 8414 §3.1
  ``/.well-known/oauth-authorization-server`` inserted before its path) and its ``issuer`` must
  equal the configured one exactly (RFC 8414 §3.3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .json_documents import DocumentProblem, JSONDocumentError, json_object
from .jwks import KeyCache, SignatureKeys
from .outbound import TRANSPORT_ERRORS, read_at_most
from .urls import service_url_problem

__all__ = [
    "DEFAULT_FETCH_DEADLINE",
    "MAX_DOCUMENT_BYTES",
    "JsonFetchError",
    "JsonFetcher",
    "KeysUnavailable",
    "RemoteKeys",
    "discovery_urls",
    "httpx_json_fetcher",
]

JsonFetcher = Callable[[str], Awaitable[Mapping[str, Any]]]
"""``await fetch(url)`` -> the JSON object at ``url``; raises :class:`JsonFetchError` otherwise."""

#: A metadata document or key set bigger than this is an attack or a misconfiguration.
MAX_DOCUMENT_BYTES = 512 * 1024
#: Seconds one fetch may take in all (connecting, headers and body).
DEFAULT_FETCH_DEADLINE = 10.0


class JsonFetchError(Exception):
    """The document could not be fetched or is not a JSON object; the message is safe to log."""


class KeysUnavailable(Exception):
    """No keys could be obtained for the signer (its metadata or key set failed); not the
    client's fault. ``description`` is safe to show."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def httpx_json_fetcher(
    client: httpx.AsyncClient, *, max_bytes: int = MAX_DOCUMENT_BYTES, deadline: float = DEFAULT_FETCH_DEADLINE
) -> JsonFetcher:
    """A :data:`JsonFetcher` on ``client``: GET, 200 only, redirects not followed, at most
    ``max_bytes``, a JSON object, all within ``deadline`` seconds (httpx's own timeouts bound
    each read, so a body dripped a byte at a time would never trip them). Every failure is a
    :class:`JsonFetchError`."""

    async def fetch(url: str) -> Mapping[str, Any]:
        try:
            async with asyncio.timeout(deadline):
                async with client.stream("GET", url, headers={"Accept": "application/json"}, follow_redirects=False) as response:
                    if response.status_code != 200:
                        raise JsonFetchError(f"{url} answered {response.status_code}")
                    body = await read_at_most(response, max_bytes)
        except TimeoutError:
            raise JsonFetchError(f"{url} did not answer within {deadline} s") from None
        except TRANSPORT_ERRORS as exc:
            raise JsonFetchError(f"{url} could not be fetched ({type(exc).__name__})") from None
        if body is None:
            raise JsonFetchError(f"{url} answered more than {max_bytes} bytes")
        try:
            return json_object(body, max_bytes=max_bytes, check_media_type=False)
        except JSONDocumentError as exc:
            shape = "a JSON object" if exc.problem is DocumentProblem.NOT_AN_OBJECT else "JSON"
            raise JsonFetchError(f"{url} did not answer {shape}") from None

    return fetch


def discovery_urls(issuer: str) -> tuple[str, ...]:
    """Where an issuer's metadata may be: OpenID Connect Discovery 1.0 §4 (appended), then
    RFC 8414 §3.1 (inserted between host and path); one URL when the issuer has no path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oidc = urlunsplit((parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", ""))
    rfc8414 = urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", ""))
    return (oidc, rfc8414)


class RemoteKeys(KeyCache[KeysUnavailable]):
    """The signature keys of one signer, under the fetch policy in this module's docstring.

    Give exactly one of ``jwks`` (a static JWK Set: never fetched), ``jwks_uri``, or
    ``issuer`` (discover the ``jwks_uri`` from its metadata).
    """

    failure = KeysUnavailable
    what = "key set"

    def __init__(
        self,
        fetch: JsonFetcher | None,
        *,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        issuer: str | None = None,
        max_age: float = 3600.0,
        unknown_kid_refetch_after: float = 60.0,
        failure_backoff: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sum(x is not None for x in (jwks, jwks_uri, issuer)) != 1:
            raise ValueError("give exactly one of jwks, jwks_uri or issuer")
        if jwks is None and fetch is None:
            raise ValueError("a fetcher is needed to fetch keys from jwks_uri or issuer metadata")
        for name, url in (("jwks_uri", jwks_uri), ("issuer", issuer)):
            if url is not None and (problem := service_url_problem(url, query_allowed=name == "jwks_uri")):
                raise ValueError(f"{name} must {problem}")
        if min(max_age, unknown_kid_refetch_after, failure_backoff) < 0:
            raise ValueError("max_age, unknown_kid_refetch_after and failure_backoff must not be negative")
        super().__init__(max_age=max_age, refetch_after=unknown_kid_refetch_after, failure_backoff=failure_backoff, clock=clock)
        self._fetch = fetch
        self._jwks_uri = jwks_uri
        self._issuer = issuer
        self._static = SignatureKeys.from_jwks(jwks) if jwks is not None else None

    async def keys(self, *, kid: str | None = None) -> SignatureKeys:
        """The keys to verify a signature with header ``kid``: cached, refreshed when old, and
        refetched (rate-limited) when ``kid`` is unknown. :class:`KeysUnavailable` when there
        are none at all."""
        if self._static is not None:
            return self._static
        keys = await self.current()
        if kid is not None and kid not in keys.by_kid and self.may_refetch():
            await self.refresh(stale_ok=True)
        assert self.held is not None
        return self.held

    async def fetch_keys(self) -> SignatureKeys:
        assert self._fetch is not None
        url = self._jwks_uri or await self._discover_jwks_uri()
        try:
            document = await self._fetch(url)
        except JsonFetchError as exc:
            raise KeysUnavailable(f"The key set could not be fetched: {exc}") from None
        try:
            return SignatureKeys.from_jwks(document)
        except ValueError as exc:
            raise KeysUnavailable(f"The key set at {url} is unusable: {exc}") from None

    async def _discover_jwks_uri(self) -> str:
        assert self._fetch is not None and self._issuer is not None
        problems: list[str] = []
        for url in discovery_urls(self._issuer):
            try:
                metadata = await self._fetch(url)
            except JsonFetchError as exc:
                problems.append(str(exc))
                continue
            if metadata.get("issuer") != self._issuer:
                # RFC 8414 §3.3: a document for another issuer must not be used.
                problems.append(f"{url} names another issuer")
                continue
            jwks_uri = metadata.get("jwks_uri")
            if problem := service_url_problem(jwks_uri):
                problems.append(f"{url}: jwks_uri must {problem}")
                continue
            assert isinstance(jwks_uri, str)
            return jwks_uri
        raise KeysUnavailable(f"The metadata of {self._issuer} names no usable jwks_uri ({'; '.join(problems)}).")

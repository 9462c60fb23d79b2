"""Talking to the identity provider: discovery, the token endpoint, revocation, JSON fetches.

One pooled HTTP client per upstream, bounded timeouts on every call, and every failure mapped
to an :class:`UpstreamError` that the endpoints turn into a 502/504 JSON answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx

from .. import jsonsafe
from ..config import Upstream
from ..forms import urlencode
from ..outbound import TRANSPORT_ERRORS, cookieless_jar
from .pool import ConnectionPool, HTTPError

logger = logging.getLogger(__name__)

DISCOVERY_TTL = 3600.0
_CREDENTIAL_FIELDS = frozenset({"client_id", "client_secret"})
# A JSON document from an IdP larger than this is not metadata, it is an attack or a bug.
MAX_JSON_BYTES = 1024 * 1024


class UpstreamError(Exception):
    """The IdP is down, slow or answered something unusable. Never the client's fault."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description


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


def default_http_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
        trust_env=False,
        cookies=cookieless_jar(),
    )


class UpstreamClient:
    """The shim's confidential client at the IdP (one per :class:`Upstream`)."""

    def __init__(self, upstream: Upstream, *, http: httpx.AsyncClient | None = None) -> None:
        self.upstream = upstream
        self._owns_http = http is None
        self.http = http or default_http_client(upstream.timeout)
        # The token and revocation POSTs are the hot path: a lean keep-alive pool serves them
        # unless the caller brought its own httpx client (proxies, custom TLS, tests).
        self._pool = ConnectionPool(timeout=upstream.timeout) if http is None else None
        self._metadata: UpstreamMetadata | None = None
        self._metadata_at = 0.0
        self._discovery: asyncio.Future[UpstreamMetadata] | None = None

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        if self._pool is not None:
            await self._pool.aclose()

    # -- discovery -------------------------------------------------------------------------

    async def metadata(self) -> UpstreamMetadata:
        """Discovered (or configured) endpoints, cached; concurrent callers share one fetch."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL:
            return self._metadata
        if self._discovery is None:
            self._discovery = asyncio.ensure_future(self._discover())
        pending = self._discovery
        try:
            result = await asyncio.shield(pending)
        finally:
            if pending.done() and self._discovery is pending:
                self._discovery = None
        return result

    async def _discover(self) -> UpstreamMetadata:
        up = self.upstream
        if up.metadata_url is None:
            assert up.authorization_endpoint and up.token_endpoint
            meta = UpstreamMetadata(
                issuer=up.issuer,
                authorization_endpoint=up.authorization_endpoint,
                token_endpoint=up.token_endpoint,
                revocation_endpoint=up.revocation_endpoint,
                jwks_uri=up.jwks_uri,
            )
        else:
            try:
                doc = await self.get_json(up.metadata_url)
            except UpstreamError as exc:
                # Name the document: "could not be reached" alone does not say what was asked.
                where = "" if up.metadata_url in exc.description else f" (reading {up.metadata_url})"
                raise UpstreamError(exc.status_code, exc.error, exc.description.rstrip(".") + where + ".") from None
            meta = self._from_document(doc)
        self._metadata, self._metadata_at = meta, time.monotonic()
        return meta

    def _from_document(self, doc: Mapping[str, Any]) -> UpstreamMetadata:
        up = self.upstream
        issuer = doc.get("issuer")
        # RFC 8414 §3.3 / OIDC Discovery §4.3: the issuer in the document must be the one we
        # asked about, or an attacker-controlled document could redirect our users.
        if up.issuer is not None and issuer != up.issuer:
            raise UpstreamError(
                502,
                "server_error",
                f"The identity provider's metadata names issuer {issuer!r}, not the configured {up.issuer!r}.",
            )
        endpoints: dict[str, str | None] = {}
        for key in (
            "authorization_endpoint",
            "token_endpoint",
            "revocation_endpoint",
            "jwks_uri",
            "introspection_endpoint",
        ):
            configured = getattr(up, key, None)
            value = configured or doc.get(key)
            if value is not None and not isinstance(value, str):
                raise UpstreamError(502, "server_error", f"The identity provider's metadata has a bad {key}.")
            endpoints[key] = value
        if not endpoints["authorization_endpoint"] or not endpoints["token_endpoint"]:
            raise UpstreamError(
                502, "server_error", "The identity provider's metadata lacks authorization_endpoint or token_endpoint."
            )
        return UpstreamMetadata(
            issuer=issuer if isinstance(issuer, str) else up.issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],  # type: ignore[arg-type]
            token_endpoint=endpoints["token_endpoint"],  # type: ignore[arg-type]
            revocation_endpoint=endpoints["revocation_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            introspection_endpoint=endpoints["introspection_endpoint"],
            raw=dict(doc),
        )

    # -- HTTP ------------------------------------------------------------------------------

    async def get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object from the IdP, mapping every failure to :class:`UpstreamError`."""
        response = await self._send("GET", url)
        if response.status_code != 200:
            raise UpstreamError(502, "server_error", f"The identity provider answered {response.status_code} for {url}.")
        return _json_object(response.content, url)

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST a form with the shim's client authentication added (RFC 6749 §2.3.1).

        Returns the IdP's status and JSON object; a non-JSON answer is an :class:`UpstreamError`.
        """
        auth_form, headers = self._client_authentication
        # The shim's own credentials always win over anything of the same name in ``form``.
        if _CREDENTIAL_FIELDS & form.keys():
            form = {k: v for k, v in form.items() if k not in _CREDENTIAL_FIELDS}
        body = urlencode(form) + "&" + auth_form if form else auth_form
        if self._pool is not None:
            return await self._post_pooled(url, body.encode(), headers)
        response = await self._send("POST", url, content=body.encode(), headers=dict(headers))
        if not response.content and 200 <= response.status_code < 300:
            return response.status_code, {}
        return response.status_code, _json_object(response.content, url)

    @cached_property
    def _client_authentication(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The form fields and header fields that authenticate the shim, encoded once."""
        up = self.upstream
        headers = [("Accept", "application/json"), ("Content-Type", "application/x-www-form-urlencoded")]
        if up.token_auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-urlencode each part before base64, not just join them.
            pair = f"{quote(up.client_id, safe='')}:{quote(up.client_secret, safe='')}"
            headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
            return urlencode({"client_id": up.client_id}), tuple(headers)
        return urlencode({"client_id": up.client_id, "client_secret": up.client_secret}), tuple(headers)

    async def _post_pooled(
        self, url: str, body: bytes, headers: tuple[tuple[str, str], ...]
    ) -> tuple[int, dict[str, Any]]:
        try:
            response = await self._pool.request("POST", url, body=body, headers=headers)  # type: ignore[union-attr]
        except TimeoutError:
            logger.warning("identity provider timed out: POST %s", url)
            raise UpstreamError(504, "temporarily_unavailable", "The identity provider did not answer in time.")
        except HTTPError as exc:
            logger.warning("identity provider unreachable: POST %s (%s)", url, exc)
            raise UpstreamError(502, "temporarily_unavailable", "The identity provider could not be reached.")
        if not response.body and 200 <= response.status < 300:
            return response.status, {}
        return response.status, _json_object(response.body, url)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            logger.warning("identity provider timed out: %s %s", method, url)
            raise UpstreamError(504, "temporarily_unavailable", "The identity provider did not answer in time.")
        except TRANSPORT_ERRORS as exc:
            logger.warning("identity provider unreachable: %s %s (%s)", method, url, type(exc).__name__)
            raise UpstreamError(502, "temporarily_unavailable", "The identity provider could not be reached.")


def _json_object(content: bytes, url: str) -> dict[str, Any]:
    if len(content) > MAX_JSON_BYTES:
        raise UpstreamError(502, "server_error", f"The identity provider's answer from {url} is too large.")
    try:
        value = jsonsafe.loads(content)
    except ValueError:
        raise UpstreamError(502, "server_error", f"The identity provider's answer from {url} is not JSON.")
    if not isinstance(value, dict):
        raise UpstreamError(502, "server_error", f"The identity provider's answer from {url} is not a JSON object.")
    return value

"""How bytes reach the identity provider: one transport, chosen when the client is built.

Everything the shim asks the IdP (discovery, the JWKS, the token, revocation and
introspection POSTs) travels through one :class:`Transport`:

- :class:`PoolTransport`, the default: the lean keep-alive pool of :mod:`.pool`, which the hot
  token POSTs need (see the numbers at the top of :mod:`.pool`);
- :class:`HttpxTransport`, when the operator passes an ``httpx.AsyncClient`` (proxies, custom
  TLS, mock transports in tests).

Both answer a :class:`~.framing.RawResponse` and fail with only two exceptions:
``TimeoutError`` (the deadline passed) and :class:`~.framing.HTTPError` (anything else on the
way), so the layer above maps failures to :class:`~.client.UpstreamError` in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from ..outbound import TRANSPORT_ERRORS
from .framing import MAX_BODY_BYTES, HTTPError, RawResponse
from .pool import ConnectionPool

__all__ = ["HttpxTransport", "PoolTransport", "Transport"]


class Transport(Protocol):
    """One request, sent once, answered in full (at most :data:`~.framing.MAX_BODY_BYTES`)."""

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> RawResponse: ...

    async def aclose(self) -> None: ...


class PoolTransport:
    """The keep-alive pool of :mod:`.pool`; reusable after :meth:`aclose` (it reconnects)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> RawResponse:
        return await self.pool.request(method, url, body=body, headers=headers)

    async def aclose(self) -> None:
        await self.pool.aclose()


class HttpxTransport:
    """An ``httpx.AsyncClient`` the operator chose; the body is read up to the same bound as
    the pool's, so an oversize answer costs no more memory on this path."""

    def __init__(self, client: httpx.AsyncClient, *, owned: bool = False) -> None:
        self.client = client
        self.owned = owned

    async def request(
        self, method: str, url: str, *, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> RawResponse:
        try:
            request = self.client.build_request(method, url, content=body or None, headers=list(headers))
            response = await self.client.send(request, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise HTTPError("the answer is larger than the bound")
                    chunks.append(chunk)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise TimeoutError from None
        except TRANSPORT_ERRORS as exc:
            raise HTTPError(type(exc).__name__) from None
        headers_out: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers_out[key] = f"{headers_out[key]}, {value}" if key in headers_out else value
        return RawResponse(response.status_code, headers_out, b"".join(chunks))

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()

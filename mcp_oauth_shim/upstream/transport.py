"""How bytes reach the identity provider: one transport, chosen when the client is built.

Everything the shim asks the IdP (discovery, the JWKS, the token, revocation and
introspection POSTs) travels through one :class:`Transport`:

- the lean keep-alive :class:`~.pool.ConnectionPool`, the default, which the hot token POSTs
  need (see the numbers at the top of :mod:`.pool`);
- :class:`HttpxTransport`, when the operator passes an ``httpx.AsyncClient`` (proxies, custom
  TLS, mock transports in tests).

Both answer a :class:`~.framing.RawResponse` and fail with only two exceptions:
``TimeoutError`` (the deadline passed) and :class:`~.framing.HTTPError` (anything else on the
way), so the layer above maps failures to :class:`~.client.UpstreamError` in one place.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Protocol

import httpx

from ..outbound import TRANSPORT_ERRORS, read_at_most
from .framing import MAX_BODY_BYTES, HTTPError, RawResponse

__all__ = ["HttpxTransport", "Transport", "authorization_field"]

# RFC 9110 §5.5: a field value is visible characters, spaces and tabs; a credential (RFC 6750
# §2.1's b64token, ``Basic`` credentials) is printable ASCII. Anything else, a CR or LF first
# of all, would let the value end the field and add others of its choosing.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


def authorization_field(value: str) -> bytes:
    """``value`` as the bytes of an ``Authorization`` field, or :class:`~.framing.HTTPError`
    when it is not printable ASCII (RFC 9110 §5.5, §11.6.2)."""
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise HTTPError("the Authorization field holds a character it may not")
    return value.encode("ascii")


class Transport(Protocol):
    """One request, sent once, answered in full (at most :data:`~.framing.MAX_BODY_BYTES`).

    ``authorization`` is the ``Authorization`` field of this one request (a user's access
    token, for UserInfo): unlike ``headers``, which repeat from request to request, it is never
    kept once the request is sent.
    """

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        authorization: str | None = None,
    ) -> RawResponse: ...

    async def aclose(self) -> None: ...


class HttpxTransport:
    """An ``httpx.AsyncClient`` the operator chose; the body is read up to the same bound as
    the pool's, so an oversize answer costs no more memory on this path.

    ``deadline`` bounds the whole exchange, as the pool's timeout does: httpx's own timeouts
    apply to each read, so a body trickled one byte at a time would never trip them.
    """

    def __init__(self, client: httpx.AsyncClient, *, deadline: float | None = None) -> None:
        self.client = client
        self.deadline = deadline

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        authorization: str | None = None,
    ) -> RawResponse:
        fields = list(headers)
        if authorization is not None:
            fields.append(("Authorization", authorization_field(authorization).decode("ascii")))
        try:
            request = self.client.build_request(method, url, content=body or None, headers=fields)
        except httpx.InvalidURL as exc:  # not an httpx.HTTPError: a bad host or port, as discovery may name
            raise HTTPError(f"unusable URL ({exc})") from None
        if not 0 < (request.url.port or 80) < 65536:  # else the socket layer raises OverflowError in a group
            raise HTTPError("unusable URL (port out of range)")
        try:
            async with asyncio.timeout(self.deadline):
                response = await self.client.send(request, stream=True)
                try:
                    content = await read_at_most(response, MAX_BODY_BYTES)
                finally:
                    await response.aclose()
        except httpx.TimeoutException:
            raise TimeoutError from None
        except TRANSPORT_ERRORS as exc:
            raise HTTPError(type(exc).__name__) from None
        if content is None:
            raise HTTPError("the answer is larger than the bound")
        # Names lower-cased and repeated fields joined with ", " by httpx, as the pool does.
        return RawResponse(response.status_code, dict(response.headers.items()), content)

    async def aclose(self) -> None:
        """Nothing to close: the client is the operator's (or the doctor's) to close."""

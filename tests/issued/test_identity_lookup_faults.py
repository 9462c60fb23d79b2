"""Issued-token mode's identity lookups (UserInfo, GitHub's user API) on the shim's keep-alive
pool, against a real loopback server that misbehaves on purpose: every fault is a clear
:class:`UpstreamError` (the status and error code the token endpoint answers with, and the
IdP's ``Retry-After`` when it gave one) within the configured deadline."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from mcp_oauth_shim.identity import fetch_github_user, fetch_userinfo
from mcp_oauth_shim.upstream import UpstreamError
from mcp_oauth_shim.upstream.pool import ConnectionPool

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5  # seconds: the pool's deadline for one exchange
HANG_GUARD = 10  # a liveness guard only, far above TIMEOUT
TOKEN = "upstream-at-7c1e"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def reply(status: int, body: bytes = b"", **headers: str) -> bytes:
    fields = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(fields) + "\r\n\r\n").encode() + body


def answering(response: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()

    return handler


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback HTTP/1.1 server; yields its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def lookup(kind: str, base: str) -> None:
    pool = ConnectionPool(timeout=TIMEOUT)
    try:
        with anyio.fail_after(HANG_GUARD):
            if kind == "userinfo":
                await fetch_userinfo(pool, f"{base}/userinfo", TOKEN)
            else:
                await fetch_github_user(pool, TOKEN, api_url=base)
    finally:
        await pool.aclose()


def in_seconds(seconds: int) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


BUSY: list[tuple[str, bytes, int]] = [
    ("429-seconds", reply(429, Retry_After="7"), 7),
    ("503-seconds", reply(503, Retry_After="12"), 12),
    ("429-http-date", reply(429, Retry_After=in_seconds(120)), 120),
]


@pytest.mark.parametrize("kind", ["userinfo", "github"])
@pytest.mark.parametrize(("response", "seconds"), [(r, s) for _, r, s in BUSY], ids=[n for n, _, _ in BUSY])
async def test_a_busy_identity_lookup_is_503_with_the_idps_retry_after(kind: str, response: bytes, seconds: int) -> None:
    async with serving(answering(response)) as base:
        with pytest.raises(UpstreamError) as caught:
            await lookup(kind, base)
    assert (caught.value.status_code, caught.value.error) == (503, "temporarily_unavailable")
    # An HTTP-date is read against the clock: the wait may come out a second shorter.
    assert seconds - 2 <= int(caught.value.headers["Retry-After"]) <= seconds

"""The IdP moves its UserInfo endpoint while the shim runs (its discovery document changes, the
old URL answers 404 or 410): as for its other endpoints, the next lookup reads the document
again instead of failing every login until the cached document is an hour old."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.identity import UpstreamTokens
from mcp_oauth_shim.identity_source import UpstreamIdentity
from mcp_oauth_shim.jwks import KeyStore
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError

pytestmark = pytest.mark.anyio


class MovingIdP:
    """Discovery names ``/userinfo-<n>``; only the current one answers, the old ones ``gone``."""

    def __init__(self, gone: int) -> None:
        self.generation = 1
        self.gone = gone
        self.requests: Counter[str] = Counter()
        self.base = ""

    def answer(self, path: str) -> tuple[int, bytes]:
        if path == "/.well-known/openid-configuration":
            self.requests["discovery"] += 1
            document = {
                "issuer": self.base,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token",
                "userinfo_endpoint": f"{self.base}/userinfo-{self.generation}",
            }
            return 200, json.dumps(document).encode()
        if path == f"/userinfo-{self.generation}":
            self.requests["userinfo"] += 1
            return 200, b'{"sub": "user-1", "email": "u@example.test"}'
        return self.gone, b"{}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                status, body = self.answer(head.split(b" ")[1].decode())
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def running(idp: MovingIdP) -> AsyncIterator[UpstreamIdentity]:
    server = await asyncio.start_server(idp.serve, "127.0.0.1", 0)
    idp.base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    upstream = Upstream.oidc(issuer=idp.base, client_id="shim", client_secret="s", identity="userinfo", issue_tokens=True, timeout=2.0)
    client = UpstreamClient(upstream)
    try:
        yield UpstreamIdentity(upstream, client, KeyStore(client, clock=time.time))
    finally:
        await client.aclose()
        server.close()


@pytest.mark.parametrize("gone", [404, 410])
async def test_a_moved_userinfo_endpoint_is_followed_after_its_old_url_is_gone(gone: int) -> None:
    idp = MovingIdP(gone)
    async with running(idp) as identity:
        assert (await identity.resolve(UpstreamTokens("at"))).subject == "user-1"
        idp.generation = 2  # moved: the cached document still names /userinfo-1
        with pytest.raises(UpstreamError):
            await identity.resolve(UpstreamTokens("at"))
        assert (await identity.resolve(UpstreamTokens("at"))).subject == "user-1"
    assert idp.requests["discovery"] == 2


async def test_a_moved_userinfo_endpoint_is_followed_on_a_refresh_recheck() -> None:
    idp = MovingIdP(404)
    async with running(idp) as identity:
        assert (await identity.recheck("at", "user-1")).subject == "user-1"
        idp.generation = 2
        with pytest.raises(UpstreamError):
            await identity.recheck("at", "user-1")
        assert (await identity.recheck("at", "user-1")).subject == "user-1"
    assert idp.requests["discovery"] == 2

"""Readiness against a real loopback IdP whose discovery document is read but unusable: a
replica that would answer every login with a 502 is not ready."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.health import Readiness
from mcp_oauth_shim.upstream import UpstreamClient

pytestmark = pytest.mark.anyio

Document = Callable[[str], dict[str, object]]


def endpoints(base: str) -> dict[str, object]:
    return {"authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"}


async def readiness_of(document: Document) -> tuple[bool, str | None]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(document(base)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = UpstreamClient(Upstream.oidc(issuer=base, client_id="shim", client_secret="shim-secret", timeout=2.0))
    try:
        result = await Readiness(client).check()
    finally:
        await client.aclose()
        server.close()
    return result.ready, result.reason


async def test_readiness_is_200_for_a_usable_discovery_document() -> None:
    assert await readiness_of(lambda base: {"issuer": base, **endpoints(base)}) == (True, None)


UNUSABLE: list[tuple[str, Document, str]] = [
    ("wrong-issuer", lambda base: {"issuer": "https://evil.example", **endpoints(base)}, "names issuer"),
    ("no-token-endpoint", lambda base: {"issuer": base, "authorization_endpoint": f"{base}/authorize"}, "lacks"),
    ("endpoint-not-a-string", lambda base: {"issuer": base, **endpoints(base), "token_endpoint": 7}, "bad token_endpoint"),
]


@pytest.mark.parametrize(("document", "reason"), [(d, r) for _, d, r in UNUSABLE], ids=[n for n, _, _ in UNUSABLE])
async def test_readiness_is_503_for_a_discovery_document_every_login_would_refuse(document: Document, reason: str) -> None:
    ready, why = await readiness_of(document)
    assert ready is False
    assert why is not None and reason in why

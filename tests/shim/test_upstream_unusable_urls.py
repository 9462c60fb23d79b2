"""URLs the IdP's discovery document may name that no HTTP/1.1 request line can carry: the
pool refuses them with its one failure type (so the shim answers a JSON 502, never a 500),
and sends nothing."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.jwks import KeyStore
from mcp_oauth_shim.upstream import HttpxTransport, UpstreamClient, UpstreamError
from mcp_oauth_shim.upstream.pool import ConnectionPool, HTTPError

pytestmark = pytest.mark.anyio

# RFC 3986 §2: a URI is ASCII (an IRI's other characters are percent-encoded before it is one);
# RFC 3986 §3.2.3 with RFC 9110 §4.2.1: a port is at most 65535; §3.2.2: an IP literal is closed.
UNUSABLE = [
    pytest.param("/keys\u20ac", id="non-latin-1-path"),
    pytest.param("/keys\u00e9", id="latin-1-path"),
    pytest.param("/keys?kid=\u2028", id="unicode-line-separator-query"),
]


async def refused_by_the_pool(url: str) -> list[bytes]:
    """Ask the pool for ``url`` (``{port}`` is a loopback server's port), which must refuse it
    with HTTPError; what reached the server, one entry per connection."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(4096))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(timeout=2.0)
    try:
        with pytest.raises(HTTPError):
            await pool.request("GET", url.format(port=port))
    finally:
        await pool.aclose()
        server.close()
    return received


@pytest.mark.parametrize("path", UNUSABLE)
async def test_a_url_with_characters_a_request_line_cannot_hold_is_refused_unsent(path: str) -> None:
    assert await refused_by_the_pool("http://127.0.0.1:{port}" + path) == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/keys", "http://[::1/keys", "http://\u20ac.example/keys"],
    ids=["port-out-of-range", "unclosed-ip-literal", "non-ascii-host"],
)
@pytest.mark.parametrize("transport", ["pool", "httpx"])
async def test_a_url_whose_authority_is_unusable_is_refused_as_an_http_error(url: str, transport: str) -> None:
    sender = ConnectionPool(timeout=2.0) if transport == "pool" else HttpxTransport(httpx.AsyncClient(), deadline=2.0)
    try:
        with pytest.raises(HTTPError):
            await sender.request("GET", url)
    finally:
        await sender.aclose()


@pytest.mark.parametrize(
    "jwks_uri",
    ["{base}/keys\u20ac", "http://127.0.0.1:99999/keys", "http://[::1/keys"],
    ids=["non-ascii-path", "port-out-of-range", "unclosed-ip-literal"],
)
async def test_a_discovered_jwks_uri_no_request_can_carry_is_a_502(jwks_uri: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(
            {"issuer": base, "authorization_endpoint": f"{base}/a", "token_endpoint": f"{base}/t", "jwks_uri": jwks_uri.format(base=base)}
        ).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = UpstreamClient(Upstream.oidc(issuer=base, client_id="c", client_secret="s"))
    try:
        with pytest.raises(UpstreamError) as caught:
            await KeyStore(client, clock=time.time).current()
    finally:
        await client.aclose()
        server.close()
    assert (caught.value.status_code, caught.value.error) == (502, "temporarily_unavailable")


async def test_a_url_with_userinfo_is_refused_unsent() -> None:
    """RFC 9110 §4.2.4: userinfo in an http(s) URI is deprecated and to be treated as an error;
    the pool would otherwise send it in the Host field (RFC 9110 §7.2 allows host and port
    only), a credential on the wire where no one expects one."""
    received = await refused_by_the_pool("http://shim:pa55word@127.0.0.1:{port}/keys")
    assert b"pa55word" not in b"".join(received)

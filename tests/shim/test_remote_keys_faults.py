"""The ordinary key set fetcher (:func:`httpx_json_fetcher`) against a real loopback server
that drips its answer: the fetch fails within its deadline, however patient httpx's per-read
timeouts are."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

from mcp_oauth_shim.remote_keys import KeysUnavailable, RemoteKeys, httpx_json_fetcher

pytestmark = pytest.mark.anyio

DEADLINE = 0.5
HANG_GUARD = 10  # a liveness guard only: the dripped body takes ~40 s to arrive


async def dripped_key_set(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"keys": [], "pad": "' + b"x" * 400 + b'"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def test_a_key_set_dripped_byte_by_byte_is_a_fetch_error_at_the_deadline() -> None:
    server = await asyncio.start_server(dripped_key_set, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/jwks"
    async with httpx.AsyncClient(timeout=5.0) as http:
        keys = RemoteKeys(httpx_json_fetcher(http, deadline=DEADLINE), jwks_uri=url)
        try:
            with anyio.fail_after(HANG_GUARD), pytest.raises(KeysUnavailable) as caught:
                await keys.keys(kid="k1")
        finally:
            server.close()
    assert "could not be fetched" in caught.value.description


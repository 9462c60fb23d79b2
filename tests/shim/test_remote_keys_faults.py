"""The ordinary key set fetcher (:func:`httpx_json_fetcher`) against a real loopback server
that drips its answer: the fetch fails within its deadline, however patient httpx's per-read
timeouts are."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

from mcp_oauth_shim.remote_keys import KeysUnavailable, RemoteKeys, httpx_json_fetcher
from tests.dripping import dripping_json

pytestmark = pytest.mark.anyio

DEADLINE = 0.5
HANG_GUARD = 10  # a liveness guard only: the dripped body takes ~40 s to arrive


dripped_key_set = dripping_json(b'{"keys": [], "pad": "' + b"x" * 400 + b'"}')


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


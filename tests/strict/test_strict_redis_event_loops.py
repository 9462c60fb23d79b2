"""One shim served on one event loop after another, with strict mode on Redis: Starlette's
``TestClient`` without a ``with`` block runs each request on an event loop of its own, and an
app mounted in another never gets the shim's lifespan (which closes the Redis connections).
redis.asyncio connections belong to the loop that opened them; one reused on the next loop
fails with ``RuntimeError: Event loop is closed``, which must not reach the endpoints."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.strict import StrictMode
from tests.peers.redis_server import RedisServer

from .shim_replicas import CLIENT_REDIRECT, PUBLIC_URL, SECRET_KEY, make_idp

pytestmark = pytest.mark.redis


def test_every_request_of_a_test_client_without_a_with_block_is_answered(redis_server: RedisServer, key_prefix: str) -> None:
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        upstream=make_idp().upstream(),
        secret_keys=[SECRET_KEY],
        strict=StrictMode.redis(redis_server.url, key_prefix=key_prefix),
    )
    client = TestClient(shim.app, base_url=PUBLIC_URL, raise_server_exceptions=False)

    statuses = [client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).status_code for _ in range(4)]

    assert statuses == [201] * 4


def test_single_use_holds_across_event_loops(redis_server: RedisServer, key_prefix: str) -> None:
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix)
    until = time.time() + 300

    answers = [asyncio.run(mode.consume_once("code", "sealed-code", until)) for _ in range(3)]

    assert answers == [True, False, False]


def test_the_store_closes_on_another_event_loop_than_its_last_call(redis_server: RedisServer, key_prefix: str) -> None:
    """The shim's lifespan shutdown may run on a loop that made no call (a ``with TestClient``
    block after requests without one)."""
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix)
    until = time.time() + 300
    assert asyncio.run(mode.consume_once("code", "sealed-code", until)) is True

    asyncio.run(mode.aclose())

    assert asyncio.run(mode.consume_once("code", "sealed-code", until)) is False

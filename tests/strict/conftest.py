"""Fixtures for the strict-mode tests: one real redis-server for the module, and a fresh key
prefix per test so tests never see each other's records."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.peers.redis_server import RedisServer, run_redis, skip_reason


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server of this test's own, for tests that kill it."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"

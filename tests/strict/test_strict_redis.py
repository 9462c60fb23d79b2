"""What only the Redis store can show: records shared by replicas, atomicity under concurrency,
what is stored and for how long, and Redis going away (a real redis-server, killed; a fake
loopback server that never answers, for the timeout)."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio
import pytest

from mcp_oauth_shim.strict import (
    RateBucket,
    RateDecision,
    RateLimit,
    RateLimits,
    RefreshUse,
    StrictMode,
    StrictModeUnavailable,
)
from mcp_oauth_shim.strict.store import RETENTION_MARGIN_SECONDS, digest
from tests.peers.redis_server import RedisServer, run_redis

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TIMEOUT = 0.3  # seconds, every Redis call
# A liveness guard only (no timing is asserted): far above TIMEOUT, far below pytest's timeout.
HANG_GUARD = 10
REPLICA_TIMEOUT = 5.0  # seconds


@pytest.fixture
async def replicas(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[tuple[StrictMode, StrictMode]]:
    """Two StrictMode instances on one Redis, as two replicas of the shim would have."""
    # A generous bound: fifty concurrent calls on a saturated machine can take longer than the
    # default 0.5 s, and these tests are about sharing and atomicity, not about timeouts.
    first = StrictMode.redis(redis_server.url, key_prefix=key_prefix, timeout=REPLICA_TIMEOUT)
    second = StrictMode.redis(redis_server.url, key_prefix=key_prefix, timeout=REPLICA_TIMEOUT)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_a_value_consumed_on_one_replica_is_refused_on_the_other(replicas: tuple[StrictMode, StrictMode]) -> None:
    first, second = replicas
    until = time.time() + 300
    assert await first.consume_once("code", "sealed-code", until) is True
    assert await second.consume_once("code", "sealed-code", until) is False


async def test_fifty_concurrent_consumptions_of_one_value_yield_exactly_one_first_use(
    replicas: tuple[StrictMode, StrictMode],
) -> None:
    until = time.time() + 300
    results: list[bool] = []

    async def consume(mode: StrictMode) -> None:
        results.append(await mode.consume_once("code", "raced-code", until))

    async with anyio.create_task_group() as tasks:
        for i in range(50):
            tasks.start_soon(consume, replicas[i % 2])
    assert len(results) == 50
    assert results.count(True) == 1


async def test_concurrent_reuse_of_one_refresh_token_honours_exactly_one(replicas: tuple[StrictMode, StrictMode]) -> None:
    until = time.time() + 3600
    results: list[RefreshUse] = []

    async def use(mode: StrictMode) -> None:
        results.append(await mode.use_refresh("family", "token-1", until))

    async with anyio.create_task_group() as tasks:
        for i in range(20):
            tasks.start_soon(use, replicas[i % 2])
    assert results.count(RefreshUse.FIRST_USE) == 1
    assert RefreshUse.REUSED in results
    assert await replicas[0].is_family_revoked("family") is True


async def test_a_refresh_token_reused_on_another_replica_revokes_the_family_everywhere(
    replicas: tuple[StrictMode, StrictMode],
) -> None:
    first, second = replicas
    until = time.time() + 3600
    assert await first.use_refresh("family", "token-1", until) is RefreshUse.FIRST_USE
    assert await second.use_refresh("family", "token-1", until) is RefreshUse.REUSED
    assert await first.use_refresh("family", "token-2", until) is RefreshUse.REVOKED


async def test_a_family_revoked_on_one_replica_is_revoked_on_the_other(replicas: tuple[StrictMode, StrictMode]) -> None:
    first, second = replicas
    await first.revoke_family("family", time.time() + 3600)
    assert await second.is_family_revoked("family") is True


async def test_rate_limits_are_shared_by_replicas(redis_server: RedisServer, key_prefix: str) -> None:
    limits = RateLimits(register_ip=RateLimit(2, 300))
    first = StrictMode.redis(redis_server.url, key_prefix=key_prefix, rate_limits=limits)
    second = StrictMode.redis(redis_server.url, key_prefix=key_prefix, rate_limits=limits)
    try:
        assert (await first.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
        assert (await second.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
        assert not (await first.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
        assert not (await second.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_refused_request_is_admitted_once_retry_after_has_passed(redis_server: RedisServer, key_prefix: str) -> None:
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix, rate_limits=RateLimits(register_ip=RateLimit(2, 2)))
    try:
        assert (await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
        assert (await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
        refused = await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7")
        assert not refused.allowed and refused.retry_after_seconds == 1
        await anyio.sleep(refused.retry_after_seconds)
        assert (await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7")).allowed
    finally:
        await mode.aclose()


async def test_separate_key_prefixes_keep_separate_records(redis_server: RedisServer, key_prefix: str) -> None:
    first = StrictMode.redis(redis_server.url, key_prefix=key_prefix + "a:")
    second = StrictMode.redis(redis_server.url, key_prefix=key_prefix + "b:")
    try:
        assert await first.consume_once("code", "sealed-code", time.time() + 300) is True
        assert await second.consume_once("code", "sealed-code", time.time() + 300) is True
    finally:
        await first.aclose()
        await second.aclose()


SECRETS = {
    "code": "code.eyJjIjoiSWRQLWNvZGUtc2VjcmV0In0.aXBD.c2lnbmF0dXJl",
    "consent": "consent.eyJ0IjoidGlja2V0In0.aXBD.c2lnbmF0dXJl",
    "family": "family-7f3a9c2b",
    "token": "refresh.eyJyIjoiSWRQLXJlZnJlc2gifQ.aXBD.c2lnbmF0dXJl",
    "revoked": "family-revoked-11aa",
    "address": "198.51.100.77",
    "client": "client-id-eyJyIjpbImh0dHBzOi8vYXBwIl19|198.51.100.77",
}


async def exercise_every_operation(mode: StrictMode, until: float) -> None:
    await mode.consume_once("code", SECRETS["code"], until)
    await mode.consume_once("consent", SECRETS["consent"], until)
    await mode.use_refresh(SECRETS["family"], SECRETS["token"], until)
    await mode.use_refresh(SECRETS["family"], SECRETS["token"], until)
    await mode.revoke_family(SECRETS["revoked"], until)
    await mode.hit(RateBucket.REGISTER_IP, SECRETS["address"])
    await mode.hit(RateBucket.TOKEN_CLIENT_IP, SECRETS["client"])


def stored(server: RedisServer, key_prefix: str) -> dict[str, tuple[bytes, int]]:
    """Every key under the prefix: its value and its remaining lifetime in ms."""
    with server.client() as client:
        return {
            key.decode(): (client.get(key), client.pttl(key))
            for key in client.scan_iter(match=key_prefix + "*", count=1000)
        }


async def test_redis_holds_only_digests_never_a_code_token_or_address(redis_server: RedisServer, key_prefix: str) -> None:
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix)
    try:
        await exercise_every_operation(mode, time.time() + 300)
    finally:
        await mode.aclose()
    records = stored(redis_server, key_prefix)
    hexdigest = "[0-9a-f]{64}"
    layout = re.compile(
        rf"{re.escape(key_prefix)}(once:(code|consent):{hexdigest}"
        rf"|refresh:\{{{hexdigest}\}}:(used:{hexdigest}|revoked)"
        rf"|rate:(register-ip|token-client-ip):{hexdigest})"
    )
    assert len(records) == 7  # 2 single-use marks, used + revoked of one family, 1 revoked family, 2 rates
    for key, (value, _) in records.items():
        assert layout.fullmatch(key), key
        assert value == b"1" or value.isdigit(), value
    everything = " ".join(f"{k} {v!r}" for k, (v, _) in records.items())
    for secret in SECRETS.values():
        for part in secret.split("|"):
            assert part not in everything
    assert f"{key_prefix}once:code:{digest(SECRETS['code'])}" in records


async def test_every_record_expires_when_the_value_it_describes_does(redis_server: RedisServer, key_prefix: str) -> None:
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix)
    lifetime = 300.0
    try:
        await exercise_every_operation(mode, time.time() + lifetime)
    finally:
        await mode.aclose()
    records = stored(redis_server, key_prefix)
    assert records
    for key, (_, ttl_ms) in records.items():
        if ":rate:" in key:
            assert 0 < ttl_ms <= 60_000, key  # until the TAT passes: at most one period
        else:
            assert 0 < ttl_ms <= (lifetime + RETENTION_MARGIN_SECONDS) * 1000, key


async def test_a_revocation_is_never_shortened(redis_server: RedisServer, key_prefix: str) -> None:
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix)
    try:
        await mode.revoke_family("family", time.time() + 3600)
        await mode.revoke_family("family", time.time() + 10)
    finally:
        await mode.aclose()
    (ttl_ms,) = [ttl for _, ttl in stored(redis_server, key_prefix).values()]
    assert ttl_ms > 3000 * 1000


# Each operation, and what it answers when Redis is away and the operator chose "allow".
OPERATIONS: list[tuple[str, Callable[[StrictMode], Awaitable[object]], object]] = [
    ("consume_once", lambda m: m.consume_once("code", "sealed-code", time.time() + 300), True),
    ("use_refresh", lambda m: m.use_refresh("family", "token-1", time.time() + 300), RefreshUse.FIRST_USE),
    ("is_family_revoked", lambda m: m.is_family_revoked("family"), False),
    ("revoke_family", lambda m: m.revoke_family("family", time.time() + 300), None),
    ("hit", lambda m: m.hit(RateBucket.REGISTER_IP, "198.51.100.7"), RateDecision(True, 0)),
]


@pytest.mark.parametrize(("name", "operation", "_"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_redis_killed_mid_run_refuses_with_unavailable(
    own_redis_server: RedisServer, key_prefix: str, name: str, operation: Callable[[StrictMode], Awaitable[object]], _: object
) -> None:
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, unavailable_retry_after=7)
    try:
        await operation(mode)  # connected and working
        own_redis_server.kill()
        with anyio.fail_after(HANG_GUARD), pytest.raises(StrictModeUnavailable) as refused:
            await operation(mode)
        assert refused.value.retry_after_seconds == 7
        assert refused.value.headers == {"Retry-After": "7"}
        assert refused.value.error == "temporarily_unavailable" and refused.value.status_code == 503
    finally:
        await mode.aclose()


@pytest.mark.parametrize(("name", "operation", "as_if_off"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_redis_killed_mid_run_with_allow_answers_as_without_strict_mode(
    own_redis_server: RedisServer,
    key_prefix: str,
    name: str,
    operation: Callable[[StrictMode], Awaitable[object]],
    as_if_off: object,
) -> None:
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, on_unavailable="allow")
    try:
        await operation(mode)
        own_redis_server.kill()
        with anyio.fail_after(HANG_GUARD):
            answer = await operation(mode)
        assert answer == as_if_off
    finally:
        await mode.aclose()


async def test_with_allow_a_value_consumed_while_redis_is_away_is_not_remembered(
    own_redis_server: RedisServer, key_prefix: str
) -> None:
    """The documented cost of "allow": single use is not checked while Redis is away."""
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT, on_unavailable="allow")
    try:
        own_redis_server.kill()
        assert await mode.consume_once("code", "sealed-code", time.time() + 300) is True
        assert await mode.consume_once("code", "sealed-code", time.time() + 300) is True
    finally:
        await mode.aclose()


async def test_strict_mode_works_again_once_redis_is_back(
    own_redis_server: RedisServer, key_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT)
    try:
        assert await mode.consume_once("code", "before", time.time() + 300) is True
        own_redis_server.kill()
        with pytest.raises(StrictModeUnavailable):
            await mode.consume_once("code", "during", time.time() + 300)
        with run_redis(tmp_path_factory.mktemp("redis-again"), port=own_redis_server.port):
            # The pooled connection died with the old server: the first call may still fail once.
            answers = []
            for _ in range(3):
                try:
                    answers.append(await mode.consume_once("code", "after", time.time() + 300))
                except StrictModeUnavailable:
                    continue
            assert answers[:2] == [True, False]
    finally:
        await mode.aclose()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a hung or overloaded Redis)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        # Never accepted: the kernel completes the handshake, and nothing is ever read or sent.
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    finally:
        sock.close()


@pytest.mark.parametrize(("name", "operation", "_"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_a_redis_that_never_answers_is_refused_within_the_timeout(
    silent_server: str, name: str, operation: Callable[[StrictMode], Awaitable[object]], _: object
) -> None:
    mode = StrictMode.redis(silent_server, timeout=TIMEOUT)
    try:
        with anyio.fail_after(HANG_GUARD), pytest.raises(StrictModeUnavailable):
            await operation(mode)
    finally:
        await mode.aclose()


async def test_unavailable_warnings_are_throttled_and_name_no_credentials(
    own_redis_server: RedisServer, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:pa55-secret-word@127.0.0.1:{own_redis_server.port}/0"
    mode = StrictMode.redis(url, key_prefix=key_prefix, timeout=TIMEOUT, on_unavailable="allow")
    own_redis_server.kill()
    caplog.set_level(logging.WARNING, logger="mcp_oauth_shim.strict")
    try:
        for _ in range(5):
            await mode.consume_once("code", SECRETS["code"], time.time() + 300)
    finally:
        await mode.aclose()
    warnings = [r for r in caplog.records if r.name == "mcp_oauth_shim.strict"]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "Redis did not answer" in text and "consume_once" in text
    for secret in ("pa55-secret-word", SECRETS["code"], digest(SECRETS["code"]), str(own_redis_server.port)):
        assert secret not in text


@pytest.mark.parametrize(("requests", "period"), [(1, 60), (3, 300), (7, 700), (30, 60), (60, 60)])
async def test_the_lua_gcra_answers_a_burst_like_the_python_gcra(
    redis_server: RedisServer, key_prefix: str, requests: int, period: float
) -> None:
    """Differential: the script Redis runs against the rule the in-memory store runs (a frozen
    clock there; real time on Redis, which may have moved a little, so a wait may be 1 s shorter)."""
    limits = RateLimits(register_ip=RateLimit(requests, period))
    on_redis = StrictMode.redis(redis_server.url, key_prefix=key_prefix, rate_limits=limits)
    in_memory = StrictMode.in_memory(rate_limits=limits, clock=lambda: 1_800_000_000.0)
    try:
        redis_answers = [await on_redis.hit(RateBucket.REGISTER_IP, "ip") for _ in range(requests + 2)]
        memory_answers = [await in_memory.hit(RateBucket.REGISTER_IP, "ip") for _ in range(requests + 2)]
    finally:
        await on_redis.aclose()
    assert [a.allowed for a in redis_answers] == [a.allowed for a in memory_answers]
    for on_r, in_m in zip(redis_answers, memory_answers):
        assert in_m.retry_after_seconds - 1 <= on_r.retry_after_seconds <= in_m.retry_after_seconds


async def test_a_redis_out_of_memory_refuses_with_unavailable(own_redis_server: RedisServer, key_prefix: str) -> None:
    """maxmemory reached under the noeviction policy: no record can be written, so nothing is honoured."""
    with own_redis_server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
    mode = StrictMode.redis(own_redis_server.url, key_prefix=key_prefix, timeout=TIMEOUT)
    try:
        with pytest.raises(StrictModeUnavailable):
            await mode.consume_once("code", "sealed-code", time.time() + 300)
    finally:
        await mode.aclose()


async def test_the_scripts_work_again_after_redis_forgot_them(redis_server: RedisServer, key_prefix: str) -> None:
    """A restarted Redis (or SCRIPT FLUSH) has no scripts: each is loaded again on NOSCRIPT,
    instead of every refresh and rate-limit check failing until the shim restarts."""
    limits = RateLimits(register_ip=RateLimit(1, 60.0))
    mode = StrictMode.redis(redis_server.url, key_prefix=key_prefix, rate_limits=limits, timeout=REPLICA_TIMEOUT)
    until = time.time() + 300
    try:
        assert await mode.use_refresh("family", "token-1", until) is RefreshUse.FIRST_USE
        with redis_server.client() as admin:
            admin.script_flush()
        answers = [
            await mode.use_refresh("family", "token-1", until),
            await mode.release_refresh("other-family", "token"),
            await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7"),
            await mode.hit(RateBucket.REGISTER_IP, "198.51.100.7"),
        ]
    finally:
        await mode.aclose()
    assert answers[0] is RefreshUse.REUSED
    assert answers[1] is False
    assert [answers[2].allowed, answers[3].allowed] == [True, False]

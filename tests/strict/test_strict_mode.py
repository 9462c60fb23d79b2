"""Strict mode's guarantees, on both stores: Redis (a real redis-server) and this process's memory.

Each behaviour runs on both stores (`strict` is parametrized); what only Redis can show (two
replicas, Redis going away) is in test_strict_redis.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from mcp_oauth_shim.strict import RateBucket, RateLimit, RateLimits, RefreshUse, StrictMode

pytestmark = pytest.mark.anyio

LIMITS = RateLimits(
    register_ip=RateLimit(3, 300),
    authorize_ip=None,
    authorize_client_ip=RateLimit(2, 600),
    token_ip=RateLimit(5, 300),
    token_client_ip=RateLimit(1, 60),
)


def in_an_hour() -> float:
    return time.time() + 3600


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def strict(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[StrictMode]:
    if request.param == "memory":
        mode = StrictMode.in_memory(rate_limits=LIMITS)
    else:
        server = request.getfixturevalue("redis_server")
        mode = StrictMode.redis(server.url, key_prefix=key_prefix, rate_limits=LIMITS)
    yield mode
    await mode.aclose()


async def test_a_value_is_consumed_only_the_first_time(strict: StrictMode) -> None:
    until = in_an_hour()
    assert await strict.consume_once("code", "sealed-code-1", until) is True
    assert await strict.consume_once("code", "sealed-code-1", until) is False
    assert await strict.consume_once("code", "sealed-code-1", until) is False


async def test_distinct_values_are_consumed_independently(strict: StrictMode) -> None:
    until = in_an_hour()
    assert await strict.consume_once("code", "sealed-code-1", until) is True
    assert await strict.consume_once("code", "sealed-code-2", until) is True


async def test_the_same_identifier_of_two_kinds_is_consumed_once_per_kind(strict: StrictMode) -> None:
    until = in_an_hour()
    assert await strict.consume_once("code", "shared-id", until) is True
    assert await strict.consume_once("consent", "shared-id", until) is True
    assert await strict.consume_once("consent", "shared-id", until) is False


@pytest.mark.parametrize("kind", ["", "Code", "code:x", "1code", "c" * 33, "code\n"])
async def test_a_kind_that_could_change_the_key_layout_is_refused(strict: StrictMode, kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        await strict.consume_once(kind, "x", in_an_hour())


async def test_the_first_use_of_each_rotated_refresh_token_is_honoured(strict: StrictMode) -> None:
    until = in_an_hour()
    assert await strict.use_refresh("family-A", "token-1", until) is RefreshUse.FIRST_USE
    assert await strict.use_refresh("family-A", "token-2", until) is RefreshUse.FIRST_USE
    assert await strict.is_family_revoked("family-A") is False


async def test_a_reused_refresh_token_revokes_its_family_and_the_newer_token_is_refused(strict: StrictMode) -> None:
    until = in_an_hour()
    assert await strict.use_refresh("family-A", "token-1", until) is RefreshUse.FIRST_USE
    # token-2 was issued for token-1; an attacker who copied token-1 presents it again.
    assert await strict.use_refresh("family-A", "token-1", until) is RefreshUse.REUSED
    assert await strict.is_family_revoked("family-A") is True
    assert await strict.use_refresh("family-A", "token-2", until) is RefreshUse.REVOKED
    assert await strict.use_refresh("family-A", "token-1", until) is RefreshUse.REVOKED


async def test_a_reuse_in_one_family_leaves_other_families_alone(strict: StrictMode) -> None:
    until = in_an_hour()
    await strict.use_refresh("family-A", "token-1", until)
    await strict.use_refresh("family-A", "token-1", until)
    assert await strict.is_family_revoked("family-B") is False
    assert await strict.use_refresh("family-B", "token-1", until) is RefreshUse.FIRST_USE


async def test_a_revoked_family_refuses_even_its_unused_tokens(strict: StrictMode) -> None:
    await strict.revoke_family("family-A", in_an_hour())
    assert await strict.is_family_revoked("family-A") is True
    assert await strict.use_refresh("family-A", "never-used", in_an_hour()) is RefreshUse.REVOKED


async def test_rate_limit_admits_a_burst_then_refuses_until_the_next_slot(strict: StrictMode) -> None:
    # 3 per 300 s: a burst of 3, then one every 100 s.
    decisions = [await strict.hit(RateBucket.REGISTER_IP, "198.51.100.7") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    refused = decisions[-1]
    assert 99 <= refused.retry_after_seconds <= 100
    assert refused.headers == {"Retry-After": str(refused.retry_after_seconds)}
    assert decisions[0].headers == {}


async def test_rate_limits_count_each_key_separately(strict: StrictMode) -> None:
    assert (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "client-1|198.51.100.7")).allowed
    assert not (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "client-1|198.51.100.7")).allowed
    assert (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "client-2|198.51.100.7")).allowed
    assert (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "client-1|203.0.113.9")).allowed


async def test_rate_limits_count_each_bucket_separately(strict: StrictMode) -> None:
    assert (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "198.51.100.7")).allowed
    assert not (await strict.hit(RateBucket.TOKEN_CLIENT_IP, "198.51.100.7")).allowed
    assert (await strict.hit(RateBucket.TOKEN_IP, "198.51.100.7")).allowed


async def test_a_bucket_without_a_limit_admits_everything(strict: StrictMode) -> None:
    decisions = [await strict.hit(RateBucket.AUTHORIZE_IP, "198.51.100.7") for _ in range(50)]
    assert all(d.allowed for d in decisions)


@pytest.mark.parametrize("value", ["", "redis://127.0.0.1:6379", object()])
def test_strict_must_be_a_strict_mode(value: object) -> None:
    from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream

    upstream = Upstream.oidc(issuer="https://idp.example.com", client_id="c", client_secret="s")
    with pytest.raises(ConfigurationError, match="strict must be a StrictMode"):
        OAuthShim(public_url="https://mcp.example.com", upstream=upstream, secret_keys=["k" * 48], strict=value)

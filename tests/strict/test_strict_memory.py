"""The in-memory store on a clock the test controls: records end with their deadline, GCRA's
exact answers, and what it does not cover (a second process)."""

from __future__ import annotations

import pytest

from mcp_oauth_shim.strict import RateBucket, RateDecision, RateLimit, RateLimits, RefreshUse, StrictMode
from mcp_oauth_shim.strict.limits import gcra
from mcp_oauth_shim.strict.store import RETENTION_MARGIN_SECONDS

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def memory(clock: Clock, **kwargs: object) -> StrictMode:
    return StrictMode.in_memory(clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_a_single_use_mark_is_kept_until_the_value_expires_plus_the_margin(clock: Clock) -> None:
    mode = memory(clock)
    until = clock.now + 300
    assert await mode.consume_once("code", "sealed", until)
    clock.now = until + RETENTION_MARGIN_SECONDS - 1
    assert not await mode.consume_once("code", "sealed", until)
    clock.now = until + RETENTION_MARGIN_SECONDS
    assert await mode.consume_once("code", "sealed", until)


async def test_a_family_revocation_ends_with_its_deadline(clock: Clock) -> None:
    mode = memory(clock)
    until = clock.now + 300
    await mode.revoke_family("family", until)
    clock.now = until + RETENTION_MARGIN_SECONDS
    assert not await mode.is_family_revoked("family")


async def test_a_later_shorter_revocation_does_not_shorten_the_first(clock: Clock) -> None:
    mode = memory(clock)
    await mode.revoke_family("family", clock.now + 3600)
    await mode.revoke_family("family", clock.now + 10)
    clock.now += 1000
    assert await mode.is_family_revoked("family")


async def test_in_memory_records_belong_to_one_process_only(clock: Clock) -> None:
    """What the docs say: two replicas with in-memory strict mode each accept a code once."""
    first, second = memory(clock), memory(clock)
    assert not first.covers_replicas
    assert await first.consume_once("code", "sealed", clock.now + 300)
    assert await second.consume_once("code", "sealed", clock.now + 300)


async def test_a_flood_of_rate_limit_keys_cannot_push_out_single_use_marks(clock: Clock) -> None:
    mode = memory(clock, max_entries=10, rate_limits=RateLimits(register_ip=RateLimit(1, 60)))
    assert await mode.consume_once("code", "sealed", clock.now + 300)
    for i in range(100):
        await mode.hit(RateBucket.REGISTER_IP, f"198.51.100.{i}")
    assert not await mode.consume_once("code", "sealed", clock.now + 300)


async def test_a_refused_request_is_admitted_exactly_when_retry_after_says(clock: Clock) -> None:
    mode = memory(clock, rate_limits=RateLimits(register_ip=RateLimit(3, 300)))
    for _ in range(3):
        assert (await mode.hit(RateBucket.REGISTER_IP, "ip")).allowed
    refused = await mode.hit(RateBucket.REGISTER_IP, "ip")
    assert refused == RateDecision(False, 100)
    clock.now += 99.999
    assert not (await mode.hit(RateBucket.REGISTER_IP, "ip")).allowed
    clock.now += 0.001
    assert (await mode.hit(RateBucket.REGISTER_IP, "ip")).allowed


async def test_the_refresh_family_rules_hold_after_time_passes(clock: Clock) -> None:
    mode = memory(clock)
    until = clock.now + 86_400
    assert await mode.use_refresh("family", "t1", until) is RefreshUse.FIRST_USE
    clock.now += 3600
    assert await mode.use_refresh("family", "t1", until) is RefreshUse.REUSED
    assert await mode.use_refresh("family", "t2", until) is RefreshUse.REVOKED


# (requests, period s, arrival times in s) -> admitted?, wait in ms for refusals
GCRA_CASES = [
    (1, 60, [0, 0, 59.999, 60], [True, False, False, True]),
    (3, 300, [0, 0, 0, 0, 100], [True, True, True, False, True]),
    (2, 10, [0, 5, 5, 10, 10], [True, True, True, True, False]),  # at 5 s: one left, one regained
    (2, 10, [0, 0, 4.999, 5, 5], [True, True, False, True, False]),
    (60, 60, [0] * 61, [True] * 60 + [False]),
]


@pytest.mark.parametrize(("requests", "period", "arrivals", "admitted"), GCRA_CASES)
def test_gcra_admits_a_burst_of_the_limit_then_one_per_interval(
    requests: int, period: float, arrivals: list[float], admitted: list[bool]
) -> None:
    limit = RateLimit(requests, period)
    tat: float | None = None
    outcome = []
    for at in arrivals:
        step = gcra(tat, at * 1000, limit)
        outcome.append(step.allowed)
        if step.allowed:
            tat = step.new_tat_ms
        else:
            assert 0 < step.wait_ms <= limit.interval_ms
    assert outcome == admitted


@pytest.mark.parametrize(("requests", "period"), [(3, 10), (7, 60), (7, 1), (30, 60), (1000, 7)])
def test_a_burst_of_exactly_the_limit_is_admitted_when_the_period_does_not_divide_evenly(requests: int, period: float) -> None:
    limit = RateLimit(requests, period)
    tat: float | None = None
    outcome = []
    for _ in range(requests + 1):
        step = gcra(tat, 1_800_000_000_000.0, limit)
        outcome.append(step.allowed)
        tat = step.new_tat_ms
    assert outcome == [True] * requests + [False]


@pytest.mark.parametrize(("requests", "period"), [(0, 60), (1, 0), (1, -5)])
def test_a_rate_limit_that_admits_nothing_is_refused_at_configuration(requests: int, period: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(requests, period)


@pytest.mark.parametrize("bucket", list(RateBucket))
def test_every_bucket_has_a_default_limit_and_off_turns_them_all_off(bucket: RateBucket) -> None:
    assert RateLimits().for_bucket(bucket) is not None
    assert RateLimits.off().for_bucket(bucket) is None


def test_on_unavailable_accepts_only_refuse_or_allow() -> None:
    from mcp_oauth_shim.strict.memory_store import MemoryStore

    with pytest.raises(ValueError, match="on_unavailable"):
        StrictMode(MemoryStore(RateLimits()), on_unavailable="ignore")  # type: ignore[arg-type]

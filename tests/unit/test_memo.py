"""Bounded memos and single-flight: the two shapes of every cache in the library."""

import asyncio

import pytest

from mcp_oauth_shim.memo import BoundedMemo, SingleFlight


def test_a_full_memo_forgets_the_least_recently_used_entry():
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "a" is now the most recently used
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (1, None, 3)
    assert len(memo) == 2


def test_an_entry_is_not_returned_at_or_after_its_deadline():
    memo: BoundedMemo[str, int] = BoundedMemo(4)
    memo.put("a", 1, deadline=10.0)
    assert memo.get("a", now=9.9) == 1
    assert memo.get("a", now=10.0) is None
    assert "a" not in memo  # dropped when met expired


def test_a_memo_of_size_zero_keeps_nothing():
    memo: BoundedMemo[str, int] = BoundedMemo(0)
    memo.put("a", 1)
    assert memo.get("a") is None and len(memo) == 0


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError):
        BoundedMemo(-1)


def test_pop_forgets_and_returns_the_value():
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    memo.put("a", 1)
    assert memo.pop("a") == 1 and memo.pop("a") is None


def test_concurrent_callers_with_one_key_share_one_run():
    async def scenario():
        flight: SingleFlight[str, int] = SingleFlight()
        runs = 0
        gate = asyncio.Event()

        async def work():
            nonlocal runs
            runs += 1
            await gate.wait()
            return 42

        waiters = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiters)
        return runs, results, len(flight)

    runs, results, running = asyncio.run(scenario())
    assert runs == 1 and results == [42] * 5 and running == 0


def test_a_cancelled_waiter_does_not_cancel_the_run_for_the_others():
    async def scenario():
        flight: SingleFlight[str, int] = SingleFlight()
        gate = asyncio.Event()

        async def work():
            await gate.wait()
            return 7

        first = asyncio.create_task(flight.run("k", work))
        second = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0)
        first.cancel()
        gate.set()
        return await second

    assert asyncio.run(scenario()) == 7


def test_a_failed_run_reaches_every_waiter_and_the_next_call_runs_again():
    async def scenario():
        flight: SingleFlight[str, int] = SingleFlight()
        calls = 0

        async def work():
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            return calls

        outcomes = await asyncio.gather(flight.run("k", work), flight.run("k", work), return_exceptions=True)
        again = await flight.run("k", work)
        return outcomes, again

    outcomes, again = asyncio.run(scenario())
    assert all(isinstance(o, RuntimeError) for o in outcomes) and again == 2

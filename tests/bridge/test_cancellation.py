"""CancellableCall: a client's cancellation ends its tool call, and no other cancellation is
taken for it (MCP 2025-11-25 "Cancellation"; asyncio's ``Task.cancel``/``uncancel`` protocol).

Each test runs the call in a task of its own, as a request is served, and cancels it from
another, as a ``notifications/cancelled`` request does. Every behaviour both can show is checked
on ``CancellableCall`` and on the reference it replaces, ``asyncio.timeout(None)`` rescheduled
into the past (``TimeoutReference``): the two must agree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from mcp_bridge.cancellation import CancellableCall

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class TimeoutReference:
    """The same contract on ``asyncio.timeout(None)``, expired on demand: the reference."""

    def __init__(self) -> None:
        self._timeout = asyncio.timeout(None)
        self.cancel_requested = False

    def cancel(self) -> None:
        self.cancel_requested = True
        self._timeout.reschedule(-1.0)

    async def run(self, call: Awaitable[T]) -> T | None:
        try:
            async with self._timeout:
                return await call
        except TimeoutError:
            if not self._timeout.expired():
                raise
            return None


Implementation = type[CancellableCall] | type[TimeoutReference]


@pytest.fixture(params=[CancellableCall, TimeoutReference])
def implementation(request: pytest.FixtureRequest) -> Implementation:
    return request.param


@pytest.fixture(params=[pytest.param({}, id="asyncio"), pytest.param({"use_uvloop": True}, id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return "asyncio", request.param


class Running:
    """A call started in its own task, waiting at an ``await`` until released."""

    def __init__(self, implementation: Implementation, *, catch: bool = False, turn_into: Exception | None = None) -> None:
        self.implementation = implementation
        self.release = asyncio.Event()
        self.catch = catch
        self.turn_into = turn_into
        self.call: CancellableCall | TimeoutReference | None = None
        self.pending_after: int | None = None
        self.task = asyncio.create_task(self._serve())

    async def _route(self) -> str:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            if self.turn_into is not None:
                raise self.turn_into from None
            if not self.catch:
                raise
            return "finished anyway"
        return "result"

    async def _serve(self) -> str | None:
        self.call = self.implementation()
        try:
            answer = await self.call.run(self._route())
        finally:
            self.pending_after = asyncio.current_task().cancelling()  # type: ignore[union-attr]
        await asyncio.sleep(0)  # the task carries on: no cancellation of ours is left to fire
        return answer

    async def started(self) -> CancellableCall | TimeoutReference:
        while self.call is None:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        return self.call


async def test_a_call_nobody_cancels_returns_its_result(implementation: Implementation) -> None:
    running = Running(implementation)
    await running.started()
    running.release.set()
    assert await running.task == "result"
    assert running.pending_after == 0


async def test_a_cancelled_call_ends_with_none_and_leaves_its_task_free_of_cancellation(implementation: Implementation) -> None:
    running = Running(implementation)
    (await running.started()).cancel()
    assert await running.task is None
    assert running.pending_after == 0


async def test_a_call_that_catches_the_cancellation_keeps_its_result(implementation: Implementation) -> None:
    running = Running(implementation, catch=True)
    (await running.started()).cancel()
    assert await running.task == "finished anyway"
    assert running.pending_after == 0


async def test_a_call_that_turns_the_cancellation_into_an_error_raises_it_and_leaves_no_cancellation(
    implementation: Implementation,
) -> None:
    running = Running(implementation, turn_into=LookupError("the route's own error"))
    (await running.started()).cancel()
    with pytest.raises(LookupError):
        await running.task
    assert running.pending_after == 0


async def test_cancelling_twice_counts_once(implementation: Implementation) -> None:
    running = Running(implementation)
    call = await running.started()
    call.cancel()
    call.cancel()
    assert call.cancel_requested
    assert await running.task is None
    assert running.pending_after == 0


async def test_another_cancellation_of_the_task_propagates(implementation: Implementation) -> None:
    running = Running(implementation)
    await running.started()
    running.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running.task
    assert running.pending_after == 1  # the other cancellation stays counted


async def test_a_client_cancellation_together_with_another_propagates(implementation: Implementation) -> None:
    running = Running(implementation)
    call = await running.started()
    call.cancel()
    running.task.cancel()  # the server shutting down, in the same loop turn
    with pytest.raises(asyncio.CancelledError):
        await running.task
    assert running.pending_after == 1  # the other cancellation stays counted


async def test_cancel_after_the_call_finished_does_nothing() -> None:
    # Where the two differ: the reference raises RuntimeError (an exited Timeout cannot be
    # rescheduled); the transport never cancels a finished call, but nothing here depends on it.
    finished = asyncio.Event()
    carry_on = asyncio.Event()

    async def serve() -> str:
        call = CancellableCall()
        holder.append(call)
        await call.run(asyncio.sleep(0))
        finished.set()
        await carry_on.wait()  # other work of the same task, after the call
        return "still running"

    holder: list[CancellableCall] = []
    task = asyncio.create_task(serve())
    await finished.wait()
    holder[0].cancel()
    assert not holder[0].cancel_requested
    carry_on.set()
    assert await task == "still running"


async def test_a_cancellation_pending_before_the_call_is_not_taken_for_the_clients(
    implementation: Implementation,
) -> None:
    async def serve() -> bool | None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        # Swallowed without uncancel: the task still counts one cancellation.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        call = implementation()
        holder.append(call)
        return await call.run(release.wait())

    holder: list[CancellableCall | TimeoutReference] = []
    release = asyncio.Event()
    task = asyncio.create_task(serve())
    while not holder:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    holder[0].cancel()
    assert await task is None
    assert task.cancelling() == 1


async def test_a_cancellation_repeated_while_the_first_is_delivered_is_ignored() -> None:
    # Where the two differ: the reference raises RuntimeError here ("Cannot change state of
    # expiring Timeout"), which a repeated notifications/cancelled could meet in the endpoint.
    running = Running(CancellableCall)
    call = await running.started()
    call.cancel()
    await asyncio.sleep(0)
    call.cancel()
    assert await running.task is None
    assert running.pending_after == 0

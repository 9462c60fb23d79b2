"""A running tool call that its client may cancel (MCP 2025-11-25 "Cancellation").

A client cancels a request it sent with ``notifications/cancelled``, which arrives as another
HTTP request, served by another task. :class:`CancellableCall` runs the tool call so that
:meth:`CancellableCall.cancel`, called from that other task, ends it at the ``await`` it is
waiting on, and tells that cancellation apart from any other: the call ends quietly (with
``None``) only when the client's cancellation is the only one pending on its task. A server
shutting down cancels the same task, and that cancellation still propagates.

This is what ``asyncio.timeout(None)``, rescheduled into the past, does (cancel the task, then
uncancel it on the way out), written out for the one use here. The context manager's entry and
exit coroutines, its timer handle and its state checks cost about 4 us of the 165 us a
stateful tool call takes in process (``python bench/inproc.py --mode stateful``), on every
call, while hardly any call is ever cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["CancellableCall"]

T = TypeVar("T")

_RUNNING, _CANCEL_REQUESTED, _FINISHED = 0, 1, 2


class CancellableCall:
    """One run of an awaitable in the current asyncio task, which :meth:`cancel` may end.

    Create it in the task that will :meth:`run` the call; hand it to whoever may cancel.
    """

    __slots__ = ("_cancelling", "_state", "_task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("CancellableCall needs a running asyncio task")
        self._task = task
        # Cancellations already pending when the call starts belong to someone else.
        self._cancelling = task.cancelling()
        self._state = _RUNNING

    @property
    def cancel_requested(self) -> bool:
        return self._state == _CANCEL_REQUESTED

    def cancel(self) -> None:
        """End the call at its current ``await``. Only the first call counts, and nothing
        happens once the call has finished (its task has moved on to other work)."""
        if self._state == _RUNNING:
            self._state = _CANCEL_REQUESTED
            self._task.cancel()

    async def run(self, call: Awaitable[T]) -> T | None:
        """``call``'s result, or ``None`` when :meth:`cancel` ended it.

        A call that catches the cancellation and finishes anyway keeps its result, and one that
        turns it into another error raises that error. Every way out leaves the task with no
        cancellation of ours pending (``Task.uncancel``), so the structured concurrency around
        it (task groups, timeouts) sees no trace of it.
        """
        try:
            result = await call
        except asyncio.CancelledError:
            if self._state == _CANCEL_REQUESTED and self._task.uncancel() <= self._cancelling:
                return None
            raise
        except BaseException:
            # The call turned the cancellation into another error: that error stands.
            if self._state == _CANCEL_REQUESTED:
                self._task.uncancel()
            raise
        else:
            if self._state == _CANCEL_REQUESTED:
                self._task.uncancel()
            return result
        finally:
            self._state = _FINISHED

"""Memory stays flat over many requests: nothing per request is retained, every cache is bounded.

The phases of ``bench/memory.py`` (which reports 100,000 requests) with 10,000 requests each.
"""

import asyncio
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import memory  # noqa: E402

pytestmark = pytest.mark.slow

REQUESTS = 10_000
# Retaining a single pointer per request (8 bytes, e.g. an entry appended to a list, without
# the object it points to) would leave 80,000 bytes after 10,000 requests. 64 KiB sits below
# that and far above what one-off allocations in a run take (a dict resized once, a lazily
# built object: measured at about 0.1 KiB).
BOUND = 64 * 1024


@pytest.fixture(scope="module")
def growth():
    from mcp_oauth_shim import metrics

    was_active = metrics.active_metrics() is not None
    try:
        yield asyncio.run(memory.run(REQUESTS, warmup=1_000, metrics=True))
    finally:
        if not was_active:
            metrics.disable_metrics()


def test_authorization_requests_leave_memory_flat(growth):
    authorize, _ = growth
    assert authorize.retained_bytes < BOUND, str(authorize)


def test_tool_calls_leave_memory_flat(growth):
    _, tool_calls = growth
    assert tool_calls.retained_bytes < BOUND, str(tool_calls)

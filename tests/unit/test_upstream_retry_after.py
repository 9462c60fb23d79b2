"""The IdP's ``Retry-After`` (RFC 9110 §10.2.3) as the shim passes it on: whole seconds,
within [0, MAX_RETRY_AFTER], from delay-seconds or an HTTP-date; unreadable values are dropped."""

from __future__ import annotations

import pytest

from mcp_oauth_shim.upstream.client import MAX_RETRY_AFTER, busy_error, retry_after_seconds
from mcp_oauth_shim.upstream.framing import RawResponse

NOW = 1_767_225_600.0  # Thu, 01 Jan 2026 00:00:00 GMT

VALUES = {
    "absent": (None, None),
    "delay-seconds": ("7", 7),
    "zero": ("0", 0),
    "padded": ("  12 ", 12),
    "longer than the bound": ("86400", MAX_RETRY_AFTER),
    "absurdly long": ("9" * 40, MAX_RETRY_AFTER),
    "HTTP-date": ("Thu, 01 Jan 2026 00:00:30 GMT", 30),
    "HTTP-date in the past": ("Wed, 31 Dec 2025 23:00:00 GMT", 0),
    "negative": ("-5", None),
    "fraction": ("1.5", None),
    "words": ("soon", None),
    "non-ASCII digits": ("٣", None),
    "date without a zone": ("Thu, 01 Jan 2026 00:00:30", None),
}


@pytest.mark.parametrize(("value", "seconds"), VALUES.values(), ids=VALUES.keys())
def test_retry_after_is_read_as_bounded_whole_seconds(value: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


STATUSES = {"429": (429, True), "503": (503, True), "500": (500, False), "502": (502, False), "200": (200, False)}


@pytest.mark.parametrize(("status", "busy"), STATUSES.values(), ids=STATUSES.keys())
def test_only_429_and_503_are_the_idp_asking_to_come_back_later(status: int, busy: bool) -> None:
    error = busy_error(RawResponse(status, {"retry-after": "7"}, b""))
    assert (error is not None) is busy
    if error is not None:
        assert (error.status_code, error.error, error.headers) == (503, "temporarily_unavailable", {"Retry-After": "7"})

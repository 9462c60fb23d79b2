"""jsonsafe reads and writes what the standard library's ``json`` does (differential tests):
pydantic_core does the work, ``json`` decides whatever pydantic_core declines."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_oauth_shim import jsonsafe


def _json_verdict(data: bytes | str) -> tuple[str, str]:
    """What ``json.loads`` makes of ``data``: ("ok", repr of the value) or ("refused", "")."""
    try:
        return "ok", repr(json.loads(data))
    except (ValueError, RecursionError):
        return "refused", ""


def _verdict(data: bytes | str) -> tuple[str, str]:
    try:
        return "ok", repr(jsonsafe.loads(data))
    except ValueError:
        return "refused", ""


# Inputs where parsers tend to differ: encodings, escapes, numbers, grammar edges.
EDGE_INPUTS: list[bytes | str] = [
    b'{"a":1}',
    "{}",
    " [1, 2.5, -0, -0.0, 1e5, 1E-400, 1e400] ",
    "123456789012345678901234567890",
    "9" * 4301,  # over CPython's integer digit limit
    "12345678901234567890.5",
    "NaN",
    "-Infinity",
    "nan",
    "[1,]",
    '{"a":1,}',
    "'a'",
    "01",
    "+1",
    ".5",
    "1.",
    "",
    " ",
    "[1 2]",
    '{"a" 1}',
    '{"a":1} x',
    '{"a":1,"a":2}',
    '"\\u0000"',
    '"\\ud800"',
    '"\ud800"',  # a str holding a lone surrogate itself, no escape
    '{"a":"\\udc00x"}',
    '"\\uD834\\uDD1E"',
    '"\\x41"',
    '"\\u00"',
    '"\x01"',
    '"a\tb"',
    '"\\/"',
    '"é"',
    b'"\xc3\xa9"',
    b'"\xff"',
    b'{"a":"\xc3"}',
    b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8
    b"\xef\xbb\xbf{}",  # UTF-8 byte order mark: json.loads accepts it in bytes
    "\ufeff{}",  # and refuses it in a str
    '{"a":1}'.encode("utf-16"),
    '{"a":1}'.encode("utf-32-le"),
    b"\x00{}",
    "true",
    "tru",
    "null",
]


@pytest.mark.parametrize("data", EDGE_INPUTS, ids=lambda d: repr(d)[:40])
def test_loads_agrees_with_json(data: bytes | str) -> None:
    assert _verdict(data) == _json_verdict(data)


@pytest.mark.parametrize("depth", [150, 250, 5000, 100_000])
def test_deep_nesting_is_read_or_refused_with_a_value_error(depth: int) -> None:
    data = "[" * depth + "]" * depth
    if _json_verdict(data)[0] == "ok":
        assert jsonsafe.loads(data) == json.loads(data)
    else:
        with pytest.raises(ValueError):
            jsonsafe.loads(data)


# JSON values, strings with any code point (lone surrogates included) and floats with NaN
# and infinities, which json writes and reads (as NaN, Infinity).
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, NaN equal to NaN and 1 not equal to 1.0 or True."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_loads_reads_what_json_writes_as_json_reads_it(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, separators=(",", ":"), indent=1)):
        assert _same(jsonsafe.loads(text), json.loads(text))
        assert _same(jsonsafe.loads(text.encode("ascii")), json.loads(text))


@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_writes_what_json_reads_back_as_the_value(value: Any) -> None:
    for encoded in (jsonsafe.dumps(value), jsonsafe.dumps_ascii(value)):
        assert _same(json.loads(encoded), json.loads(json.dumps(value)))


@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_ascii_writes_ascii_only(value: Any) -> None:
    assert jsonsafe.dumps_ascii(value).isascii()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": "b", "n": [1, None, True]}, b'{"a":"b","n":[1,null,true]}'),
        ({"name": "é"}, '{"name":"é"}'.encode()),
        ({"lone": "\ud800"}, b'{"lone":"\\ud800"}'),
    ],
)
def test_dumps_is_compact_utf8_and_escapes_what_utf8_cannot_hold(value: Any, expected: bytes) -> None:
    assert jsonsafe.dumps(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "é"}, b'{"name":"\\u00e9"}'),
        ({"lone": "\ud800", "x": "\u2028"}, b'{"lone":"\\ud800","x":"\\u2028"}'),
    ],
)
def test_dumps_ascii_escapes_non_ascii_as_json_does(value: Any, expected: bytes) -> None:
    assert jsonsafe.dumps_ascii(value) == expected


def test_dumps_refuses_what_json_cannot_hold_with_a_type_error() -> None:
    with pytest.raises(TypeError):
        jsonsafe.dumps({"a": object()})

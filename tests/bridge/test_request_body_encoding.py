"""The JSON body a tool call sends to its route: written by pydantic_core, read back as the
value `json` would have written (differential against `encoding.encode_utf8`)."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_bridge.encoding import encode_utf8, to_utf8_bytes

# What a tool's arguments can hold: read from JSON by pydantic_core, so JSON's types and no
# lone surrogate (pydantic_core refuses them), integral floats made ints by the checks.
_text = st.text(st.characters(exclude_categories=["Cs"]))
_arguments = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_arguments)
def test_a_body_reads_back_as_json_would_have_written_it(value: Any) -> None:
    assert json.loads(to_utf8_bytes(value)) == json.loads(encode_utf8(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "Widget", "tags": ["a", "b"], "price": 12.5}, b'{"name":"Widget","tags":["a","b"],"price":12.5}'),
        ({"name": "Café ☕"}, '{"name":"Café ☕"}'.encode()),
        ({"n": 10**30, "none": None, "yes": True}, b'{"n":1000000000000000000000000000000,"none":null,"yes":true}'),
    ],
)
def test_a_body_is_compact_utf8(value: Any, expected: bytes) -> None:
    assert to_utf8_bytes(value) == expected


def test_what_pydantic_core_cannot_write_is_written_the_json_way() -> None:
    value = {"lone": "\ud800"}
    with pytest.raises(pydantic_core.PydanticSerializationError):
        pydantic_core.to_json(value)
    with pytest.raises(UnicodeEncodeError):  # as before: no UTF-8 holds it
        to_utf8_bytes(value)

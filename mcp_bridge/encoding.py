"""The bridge's JSON writers, prepared once (RFC 8259; compact separators, as the SDK writes).

`json.dumps(value, separators=...)` builds a new `JSONEncoder` on every call with non-default
settings; these are built once and reused. Everything the bridge encodes is a tree: a message
parsed from JSON, a result or a tool schema the bridge built (recursion stays a `$ref`), so
the cycle check is off for the UTF-8 writer, which runs on every tool call with a JSON body.
(A private CPython entry point, `json.encoder.c_make_encoder`, called directly saved a further
0.55 µs per call; not worth depending on an undocumented name.)

The request body a tool call sends to its route is written by pydantic_core instead
(`to_utf8_bytes`), the library that parsed the arguments: 0.4 µs against 2.0 µs for `json`
(`timeit`, a five-field body). Arguments read from JSON hold JSON's types only and no lone
surrogate, and are written as the same JSON values (a number may be spelled differently:
`1e-05` as `0.00001`). A string no UTF-8 holds fails as it did with `json`. Arguments given
in process (`MCPBridge.call`) that are not JSON values are written as pydantic_core writes
them (a `date` as its ISO string, `bytes` as text), where `json` raised `TypeError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic_core

__all__ = ["encode_ascii", "encode_utf8", "to_utf8_bytes"]

# Non-ASCII characters as `\uXXXX` escapes, as `json.dumps` writes by default: the results the
# endpoint sends, byte for byte what the SDK's path gives.
encode_ascii: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode

# Non-ASCII characters as they are (the caller encodes the text as UTF-8): request bodies for
# the app's routes, `tools/list` and `initialize` answers.
encode_utf8: Callable[[Any], str] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False
).encode


def to_utf8_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON bytes: the JSON value `encode_utf8(value).encode()` writes."""
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return encode_utf8(value).encode()

"""JSON in and out of the shim: what a peer sends, read failing only with ``ValueError``; what
the shim writes, compact.

Both directions run on pydantic_core's JSON (Rust, already a dependency through pydantic), with
the standard library's ``json`` behind it for what pydantic_core declines, so that the values
read and written are exactly those of ``json``:

- :func:`loads` is ``json.loads``. pydantic_core refuses a few inputs that ``json`` accepts (a
  UTF-8 byte order mark and UTF-16/32 bytes, which ``json.loads`` detects; lone surrogates,
  ``"\\ud800"``); those, and every malformed input, are read again by ``json``, whose verdict
  stands. ``json.loads`` raises ``RecursionError`` for deeply nested input (a few kilobytes of
  ``[``), which would escape every ``except ValueError`` and become a 500: here it is a
  ``ValueError``.
- :func:`dumps` writes UTF-8 and :func:`dumps_ascii` ASCII (non-ASCII characters escaped, as
  ``json`` does by default); a string pydantic_core cannot encode (a lone surrogate) is written
  by ``json``, escaped. Both are meant for values made of JSON's types (``dict``, ``list``,
  ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``), which read back as ``json``'s
  own output would; a number may be spelled differently (``1e-05`` as ``0.00001``), never
  valued differently. pydantic_core also writes some types ``json`` refuses (``bytes``,
  ``set``, dates), which no caller passes.

Why not ``json`` alone: these run on every login and refresh (the sealed values opened and
written, the token answer), and ``json.JSONEncoder.encode`` builds its C encoder on every call.
Measured with ``timeit`` on the bench machine: a token answer 3.7 µs with ``json`` against
0.8 µs, a sealed refresh token's payload 1.6 against 0.3 µs, a sealed code's payload read 1.6
against 0.6 µs. tests/unit/test_jsonsafe.py compares both functions with ``json`` on a table
of edge cases and on generated values.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

__all__ = ["dumps", "dumps_ascii", "loads"]

_encode_ascii = json.JSONEncoder(separators=(",", ":")).encode


def loads(data: bytes | bytearray | str) -> Any:
    """``json.loads(data)``, raising ``ValueError`` (``UnicodeDecodeError`` is one) for anything
    that is not JSON, however deeply nested."""
    try:
        return pydantic_core.from_json(data, cache_strings="keys")
    except (ValueError, TypeError):
        # Not JSON, JSON that only the standard library reads, or a str that is no UTF-8 text
        # (a lone surrogate, refused with TypeError): the standard library decides.
        return _standard_loads(data)


def _standard_loads(data: bytes | bytearray | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8."""
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return _encode_ascii(value).encode("ascii")  # raises TypeError for what JSON cannot hold


def dumps_ascii(value: Any) -> bytes:
    """``value`` as compact JSON in ASCII, for values that travel in URLs, forms and cookies."""
    encoded = dumps(value)
    return encoded if encoded.isascii() else _encode_ascii(value).encode("ascii")

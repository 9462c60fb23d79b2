"""JSON from untrusted peers, failing only with ``ValueError``.

``json.loads`` raises ``RecursionError`` for deeply nested input (a few kilobytes of ``[``),
which would escape every ``except ValueError`` and become a 500. Everything the shim parses
from a client, a metadata document or the IdP goes through :func:`loads`.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: bytes | bytearray | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None

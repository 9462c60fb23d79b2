"""Keep codes, states and tokens out of access logs.

The shim itself never logs them, but a server's access log prints every request line, and the
callback's query string carries the IdP's code and the signed state. Install
:class:`RedactQueryStrings` on ``uvicorn.access`` (``mcp-oauth-shim serve`` does) or use
:func:`uvicorn_log_config`.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_QUERY = re.compile(r"\?[^\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """Drop query strings and bearer credentials from a log message."""
    return _BEARER.sub(r"\1[redacted]", _QUERY.sub("?[redacted]", text))


class RedactQueryStrings(logging.Filter):
    """A logging filter that removes query strings (and bearer tokens) from records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with query strings redacted from access logs."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_queries"] = {"()": RedactQueryStrings}
    config["handlers"]["access"]["filters"] = ["redact_queries"]
    return config

"""Log output formats: one JSON object per line, or the usual text; :func:`configure_logging`.

``configure_logging(format="json")`` (the CLI's ``--log-format json``, variable
``MCP_OAUTH_SHIM_LOG_FORMAT``) installs one handler on the root logger that prints every record
of the process as a JSON object::

    {"time": "2026-12-04T17:05:01.123Z", "level": "INFO", "logger": "mcp_oauth_shim.events",
     "message": "login step", "request_id": "5f0c...-2a", "login_id": "9b1e44c0d2aa",
     "event": "login.callback", "result": "ok"}

``time``, ``level``, ``logger``, ``message`` and ``request_id`` are always there (``null``
outside a request); ``login_id`` while a login is followed; then whatever the record carries as
``extra=`` (the shim's events name an ``event`` and their own fields, never a secret); and
``exception`` with the traceback when one is logged. Uvicorn's own handlers, when uvicorn has
already configured them, are switched to the same format, so its access lines are JSON too.

Redaction is not this module's business and does not depend on it: the filter that removes
query strings and bearer tokens from access lines sits on the ``uvicorn.access`` *logger*
(:mod:`mcp_oauth_shim.logs`), so it applies before any handler or formatter sees a record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal, TextIO

from .log_context import LogContextFilter

__all__ = ["LOG_FORMATS", "JsonFormatter", "LogFormat", "TextFormatter", "configure_logging", "formatter_for"]

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")

# The attributes every LogRecord has; anything else on a record came with ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn repeats the message with terminal colours; the JSON has the plain one.
    "color_message",
    # printed by name below
    "request_id",
    "login_id",
}
# The loggers uvicorn configures with handlers of their own (propagate=False).
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries beyond the standard ones (``extra=``)."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        login_id = getattr(record, "login_id", None)
        if login_id is not None:
            document["login_id"] = login_id
        for key, value in event_fields(record).items():
            document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False, separators=(",", ":"))


# What would end a text line or drive the operator's terminal: C0 and C1 controls but the tab,
# DEL, and the Unicode line and paragraph separators (str.splitlines breaks on all of them).
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every character of :data:`_UNPRINTABLE` written as its Python escape
    (``\\n``, ``\\x1b``): a value a client chose stays on its record's line."""
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """``time level logger: message`` then ``key=value`` for the request id, login id and event
    fields that are set; one line per record (control characters escaped, see
    :func:`printable`), a traceback below it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {"request_id": getattr(record, "request_id", None), "login_id": getattr(record, "login_id", None)}
        fields.update(event_fields(record))
        suffix = printable(" ".join(f"{key}={value}" for key, value in fields.items() if value is not None))
        if not suffix:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} {suffix}{newline}{rest}"


def formatter_for(format: LogFormat) -> logging.Formatter:
    if format == "json":
        return JsonFormatter()
    if format == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {format!r}")


def _utc(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


class _ShimHandler(logging.StreamHandler):
    """The handler :func:`configure_logging` installs (found again and replaced by a second call)."""


def configure_logging(
    format: LogFormat = "json",
    *,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Print the process's logs in ``format`` (``"json"``: one object per line; ``"text"``).

    Installs one handler on the root logger (replacing one a previous call installed, keeping
    any other), sets the root level to ``level``, and gives the handlers uvicorn set up on its
    own loggers the same formatter and the request-context filter. Returns the handler.
    """
    formatter = formatter_for(format)
    context = LogContextFilter()
    handler = _ShimHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(context)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ShimHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        for existing in logging.getLogger(name).handlers:
            existing.setFormatter(formatter)
            if not any(isinstance(f, LogContextFilter) for f in existing.filters):
                existing.addFilter(context)
    return handler

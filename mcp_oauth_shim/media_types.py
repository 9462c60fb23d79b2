"""Media types of request bodies (RFC 9110 §8.3.1): the one check every endpoint uses.

The type and subtype are case-insensitive and parameters (``charset=utf-8``) do not change
what the body is, so ``Application/JSON; charset=UTF-8`` is JSON. A missing header is no
media type at all: it never matches.
"""

from __future__ import annotations

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
EVENT_STREAM = "text/event-stream"

__all__ = ["EVENT_STREAM", "FORM", "JSON", "essence", "is_media_type"]


def essence(content_type: str | bytes | None) -> str:
    """``type/subtype`` of a ``Content-Type`` value, lower-cased, parameters dropped ('' if none)."""
    if content_type is None:
        return ""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return content_type.split(";", 1)[0].strip().lower()


def is_media_type(content_type: str | bytes | None, expected: str) -> bool:
    """Is the body declared as ``expected`` (one of :data:`FORM`, :data:`JSON`, ...)?"""
    return essence(content_type) == expected

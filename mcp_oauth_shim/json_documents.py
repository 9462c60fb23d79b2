"""The one policy for JSON documents fetched from another server (IdP discovery, JWKS, client
ID metadata documents, the doctor's probes).

A document is accepted only when it is declared JSON (RFC 8259 §11 ``application/json``, or a
structured ``+json`` type per RFC 6839 §3.1 such as RFC 7517 §8.5 ``application/jwk-set+json``),
is at most a given size, parses (without the ``RecursionError`` that deep nesting raises, see
:mod:`.jsonsafe`) and is a JSON object. Each caller words the refusal for its own audience; the
:class:`DocumentProblem` says which rule failed.
"""

from __future__ import annotations

import enum
from typing import Any

from . import jsonsafe
from .media_types import JSON, essence

__all__ = ["DocumentProblem", "JSONDocumentError", "is_json_media_type", "json_object"]


class DocumentProblem(enum.Enum):
    """Which rule a fetched document broke."""

    NOT_DECLARED_JSON = "is not declared as JSON"
    TOO_LARGE = "is too large"
    NOT_JSON = "is not JSON"
    NOT_AN_OBJECT = "is not a JSON object"


class JSONDocumentError(ValueError):
    """A fetched document is unusable; ``problem`` says why."""

    def __init__(self, problem: DocumentProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def is_json_media_type(content_type: str | bytes | None) -> bool:
    """``application/json`` or ``application/<anything>+json`` (RFC 6839 §3.1), parameters ignored."""
    media_type = essence(content_type)
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


def json_object(
    body: bytes, *, max_bytes: int, content_type: str | bytes | None = None, check_media_type: bool = True
) -> dict[str, Any]:
    """The JSON object in ``body``, or :class:`JSONDocumentError`.

    The media type is checked first (when ``check_media_type``), then the size, then the syntax.
    """
    if check_media_type and not is_json_media_type(content_type):
        raise JSONDocumentError(DocumentProblem.NOT_DECLARED_JSON)
    if len(body) > max_bytes:
        raise JSONDocumentError(DocumentProblem.TOO_LARGE)
    try:
        value = jsonsafe.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise JSONDocumentError(DocumentProblem.NOT_JSON) from None
    if not isinstance(value, dict):
        raise JSONDocumentError(DocumentProblem.NOT_AN_OBJECT)
    return value

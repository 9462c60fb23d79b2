"""``application/x-www-form-urlencoded`` (URL Standard §5): OAuth's query strings and forms.

RFC 6749 §3.1 forbids repeated parameters, so requests parse into plain dicts. Both directions
follow :mod:`urllib.parse` exactly, with a fast path for the plain values that make up most of
an OAuth exchange (signed values, codes, challenges): every authorize, callback and token call
goes through here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_plus, unquote

from .rfc6750 import sanitize_description


class ParameterError(ValueError):
    """Request parameters that no endpoint accepts; ``description`` is safe to show."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


MAX_PARAMETERS = 100


def parse_form(body: bytes) -> dict[str, str]:
    """An x-www-form-urlencoded body as a dict; RFC 6749 §3.1 forbids repeated parameters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParameterError("The request body is not UTF-8.") from None
    return parse_query(text)


def parse_query(text: str) -> dict[str, str]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True)`` into a dict, refusing repeats.

    Same splitting and decoding (``&`` only, ``+`` is a space, UTF-8 percent-escapes with
    replacement), but only the parts that contain ``%`` or ``+`` are decoded: in an OAuth
    request most values are plain, and this runs on every authorize, callback and token call.
    """
    result: dict[str, str] = {}
    if not text:
        return result
    parts = text.split("&")
    if len(parts) > MAX_PARAMETERS:
        raise ParameterError(f"More than {MAX_PARAMETERS} parameters.")
    for part in parts:
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = _unquote_plus(key)
        if "%" in value or "+" in value:
            value = _unquote_plus(value)
        if key in result:
            raise ParameterError(sanitize_description(f"Parameter {key[:40]} is repeated."))
        result[key] = value
    return result


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
# The encoded values that repeat from request to request (redirect URIs, the resource, the
# issuer, scopes) are decoded and encoded once; a bounded LRU, and only for short values.
_CACHED_LENGTH = 256


def _short_values_cached(convert: Callable[[str], str]) -> Callable[[str], str]:
    """``convert``, answered from a bounded LRU for values up to :data:`_CACHED_LENGTH` long."""
    cached = functools.lru_cache(maxsize=512)(convert)
    return lambda text: cached(text) if len(text) <= _CACHED_LENGTH else convert(text)


_unquote_plus = _short_values_cached(lambda text: unquote(text.replace("+", " ")))
_quote_plus = _short_values_cached(quote_plus)


def urlencode(params: Mapping[str, object]) -> str:
    """``urllib.parse.urlencode(params)``: the same output, without quoting the values that
    need none (signed values, codes and challenges are already plain)."""
    plain = _PLAIN.fullmatch
    return "&".join(
        (k if plain(k) else _quote_plus(k)) + "=" + (v if isinstance(v, str) and plain(v) else _quote_plus(str(v)))
        for k, v in params.items()
    )


def append_query(uri: str, params: dict[str, str]) -> str:
    """Add parameters to a URI that may already carry a query (RFC 6749 §3.1.2 keeps it)."""
    separator = "&" if "?" in uri else "?"
    return uri + separator + urlencode(params)


# What starlette's RedirectResponse leaves unquoted in a Location: unreserved, reserved and "%".
_LOCATION_SAFE = re.compile(r"[A-Za-z0-9_.~\-:/%#?=@\[\]!$&'()*+,;]*")


def location(url: str) -> str:
    """``url`` as starlette's ``RedirectResponse`` would put it in ``Location``: characters
    outside the URI syntax percent-encoded, so a header can never be split."""
    return url if _LOCATION_SAFE.fullmatch(url) else quote(url, safe=":/%#?=@[]!$&'()*+,;")

"""The HTML pages the shim shows a person (consent, errors): templates and hardening headers.

Templates live in ``templates/`` and use ``$name`` placeholders; every value put into them is
HTML-escaped by the caller. Every page is sent with :func:`page_headers`: never cached
(RFC 9111 §5.2.2.5 ``no-store``), never framed (CSP ``frame-ancestors 'none'``, RFC 7034
``X-Frame-Options``), nothing loaded from elsewhere.
"""

from __future__ import annotations

import re
from importlib import resources

#: Characters a client-chosen name shown on a page must not hold: C0/C1 controls, line and
#: paragraph separators, bidi marks, embeddings, overrides and isolates (Unicode UAX #9), with
#: which a name can be made to read as something else once displayed.
SPOOFING_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def load_template(name: str) -> str:
    """``templates/<name>`` as a ``str.format`` template: ``$name`` placeholders, literal braces kept."""
    text = resources.files(__package__).joinpath("templates/" + name).read_text("utf-8")
    return re.sub(r"\$(\w+)", r"{\1}", text.replace("{", "{{").replace("}", "}}"))


def page_headers() -> dict[str, str]:
    """Headers for every HTML page the shim shows: not cacheable, not frameable, no referrer."""
    return {
        # Cache-Control alone: Pragma (RFC 9111 §5.4, deprecated) adds nothing for a page.
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the
        # consent POST, which the same-origin check must refuse.
        "Referrer-Policy": "same-origin",
    }


PAGE_HEADERS_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in page_headers().items()]
""":func:`page_headers` as ASGI raw headers, for responses built on the hot path."""

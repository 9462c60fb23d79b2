"""Input generators shared by the fuzz modules, and the one hypothesis setting they all use.

Values mix the plausible (what a real client sends, so the fuzzer gets past the first check)
with the hostile (control characters, percent-escapes of invalid UTF-8, enormous values,
lookalike URLs). Credentials the properties must never see echoed are "planted": recognisable
markers (``PLANTED`` plus random characters) put where a code, verifier, token or secret goes.
"""

from __future__ import annotations

import string
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Deterministic and database-less: the same examples on every machine and every CI run.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

PLANT_PREFIX = "PLANTED"
_URLSAFE = string.ascii_letters + string.digits + "-_"

planted = st.text(alphabet=_URLSAFE, min_size=12, max_size=40).map(lambda s: PLANT_PREFIX + s)
"""A credential-shaped marker whose echo anywhere would be a leak."""

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\r\nSet-Cookie: x=1",
            "<script>alert(1)</script>",
            "%",
            "%zz",
            "%ff%fe",
            "%C0%AF",
            "%00",
            "+",
            "../..",
            "javascript:alert(1)",
            "\u202e",
            "\ud7ff",
            "A" * 5000,
            "null",
            "[]",
            "{}",
        ]
    ),
)
"""Text that no endpoint expects."""

hostile_urls = st.one_of(
    st.sampled_from(
        [
            "https://evil.example/cb",
            "https://evil.example",
            "http://127.0.0.1:53682/callback/../x",
            "http://127.0.0.1:53682/callback#frag",
            "http://127.0.0.1:53682/callback?x=1",
            "http://127.0.0.1:53682/Callback",
            "http://127.0.0.1:53682/callback/",
            "http://user@127.0.0.1:53682/callback",
            "http://127.0.0.1.evil.example/callback",
            "HTTP://127.0.0.1:53682/callback",
            "http://localhost:53682/callback",
            "http://[::1]:53682/callback",
            "http://127.0.0.1:99999/callback",
            "http://127.0.0.1:0/callback",
            "javascript:alert(1)//",
            "data:text/html,x",
            "//evil.example/cb",
            "/callback",
            "https://[zz]/x",
            "https://[::1/x",
            "https://a b/x",
            "https://exa%00mple.com/x",
            "https://example.com:-1/x",
            "https:///x",
            "cursor://anysphere.cursor-retrieval/oauth",
        ]
    ),
    st.builds(lambda host, path: f"https://{host}/{path}", st.text(max_size=15), st.text(max_size=15)),
)
"""URLs that look like a redirect URI, a resource or a client_id URL, and are not (quite)."""


def query_string(pairs: list[tuple[str, str]], raw: bool) -> str:
    """``pairs`` as a query: form-encoded, or joined raw so broken escapes reach the server."""
    if raw:
        return "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def encodable(text: str) -> str:
    """``text`` without what an HTTP client library refuses to put on the wire at all (CR, LF,
    NUL in a header; lone surrogates anywhere): the library stops those before the server."""
    return "".join(c for c in text if c not in "\r\n\x00" and not 0xD800 <= ord(c) <= 0xDFFF)


header_values = hostile_text.map(lambda s: encodable(s).encode("latin-1", "replace").decode("latin-1").strip())
"""Header values an HTTP client will send (latin-1, no line breaks)."""

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
    max_examples=100,
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


FORM = "application/x-www-form-urlencoded"
content_types = st.one_of(
    st.just(FORM),
    st.sampled_from(
        [
            FORM + "; charset=utf-8",
            "APPLICATION/X-WWW-FORM-URLENCODED",
            "application/json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/x-www-form-urlencoded-evil",
            "",
        ]
    ),
    header_values,
)
"""``Content-Type`` values, the right one most often."""


@st.composite
def client_authorization(draw: st.DrawFn, client_id: str, *, always: bool = False) -> tuple[str | None, list[str]]:
    """An ``Authorization`` header for a token or revocation request (or none, unless
    ``always``), and the credentials planted in it."""
    import base64

    secret = draw(planted)
    kinds = ["basic", "basic-other", "basic-garbage", "bearer", "hostile"]
    kind = draw(st.sampled_from(kinds if always else ["none", *kinds]))
    if kind == "none":
        return None, []
    if kind == "basic":
        return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode(), [secret]
    if kind == "basic-other":
        who = draw(st.one_of(hostile_text, hostile_urls))
        return "Basic " + base64.b64encode(f"{encodable(who)}:{secret}".encode()).decode(), [secret]
    if kind == "basic-garbage":
        return "Basic " + draw(header_values), []
    if kind == "bearer":
        return "Bearer " + secret, [secret]
    return draw(header_values) or None, []


@st.composite
def form_body(draw: st.DrawFn, valid: dict[str, str], known: list[str], secret_fields: list[str]) -> tuple[bytes, list[str]]:
    """A form built from ``valid`` with up to four fields dropped, replaced or added (planted
    credentials in ``secret_fields``), sometimes with a repeat, broken escapes or bytes that are
    not UTF-8. Returns the body and the planted credentials."""
    fields = dict(valid)
    secrets: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(known))
        action = draw(st.sampled_from(["drop", "replace", "replace", "plant"]))
        if action == "drop":
            fields.pop(name, None)
        elif action == "plant" and name in secret_fields:
            fields[name] = draw(planted)
            secrets.append(fields[name])
        else:
            fields[name] = draw(st.one_of(hostile_text, hostile_urls))
    pairs = list(fields.items())
    pairs += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=2))
    if draw(st.integers(0, 9)) == 0 and pairs:
        pairs.append(draw(st.sampled_from(pairs)))
    safe = "%+=&" if draw(st.integers(0, 4)) == 0 else ""
    body = "&".join(f"{quote(k, safe=safe)}={quote(encodable(v), safe=safe)}" for k, v in pairs).encode()
    if draw(st.integers(0, 9)) == 0:
        body += draw(st.sampled_from([b"&x=\xff\xfe", b"\x00", b"&&&", b"=", b"&%", b"\xc3"]))
    return body, secrets


def wire(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as latin-1 bytes, so the test client sends them as they are (RFC 9110
    §5.5: obs-text is allowed on the wire; clients that encode str as ASCII would refuse it)."""
    return {name: value.encode("latin-1") for name, value in headers.items()}

"""x-www-form-urlencoded both ways: the same results as urllib.parse (and starlette's
RedirectResponse for Location), with repeated parameters refused (RFC 6749 §3.1)."""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlencode as urllib_urlencode

import pytest
from starlette.responses import RedirectResponse

from mcp_oauth_shim.forms import (
    MAX_PARAMETERS,
    ParameterError,
    append_query,
    location,
    parse_form,
    parse_query,
    urlencode,
)

QUERIES = [
    "",
    "a=1",
    "a=1&b=2",
    "a=&b",
    "a",
    "&&a=1&&",
    "a==b",
    "k=v+w",
    "k%20x=v%2Bw",
    "redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback",
    "scope=openid+profile+offline_access",
    "name=caf%C3%A9",
    "bad=%E9%FF",  # not UTF-8: replacement characters, as urllib does
    "half=%4",
    "semi=a;b",
    "plus%2B=%2B+",
    "x=" + "y" * 300 + "%20",  # longer than the decoding cache takes
]


@pytest.mark.parametrize("text", QUERIES)
def test_a_query_parses_as_urllib_parses_it(text: str) -> None:
    assert parse_query(text) == dict(parse_qsl(text, keep_blank_values=True))


@pytest.mark.parametrize("text", ["a=1&a=2", "a=1&b=2&a=", "a%20b=1&a+b=2"])
def test_a_repeated_parameter_is_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="repeated"):
        parse_query(text)


def test_too_many_parameters_are_refused() -> None:
    parse_query("&".join(f"p{i}=1" for i in range(MAX_PARAMETERS)))
    with pytest.raises(ParameterError, match="More than"):
        parse_query("&".join(f"p{i}=1" for i in range(MAX_PARAMETERS + 1)))


def test_a_form_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ParameterError, match="UTF-8"):
        parse_form(b"a=\xff")


PARAMS = [
    {},
    {"code": "abc.DEF_-~", "state": "xyz"},
    {"redirect_uri": "http://127.0.0.1:53682/cb?x=1&y=2", "scope": "openid profile"},
    {"name": "café ☕", "k y": "a+b=c&d"},
    {"n": 5, "b": True},
    {"long": "/" * 300},
]


@pytest.mark.parametrize("params", PARAMS)
def test_parameters_encode_as_urllib_encodes_them(params: dict[str, object]) -> None:
    assert urlencode(params) == urllib_urlencode(params)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://127.0.0.1:1/cb", "http://127.0.0.1:1/cb?code=c&state=s+1"),
        ("https://app.example/cb?tenant=a", "https://app.example/cb?tenant=a&code=c&state=s+1"),
    ],
)
def test_parameters_are_appended_to_an_existing_query(uri: str, expected: str) -> None:
    assert append_query(uri, {"code": "c", "state": "s 1"}) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:53682/cb?code=abc&state=x%20y&iss=http%3A%2F%2Fh",
        "cursor://anysphere.cursor-retrieval/oauth/callback?code=1",
        "https://h/p?q=\"<>\\^`{|}",
        "https://h/p?q=\r\nSet-Cookie: x=1",
        "https://h/é",
        "https://[::1]:8/a;b=c,d*e!f$g'h(i)j+k@l",
    ],
)
def test_a_location_is_written_as_starlette_writes_it(url: str) -> None:
    assert location(url) == RedirectResponse(url).headers["location"]
    assert "\r" not in location(url) and "\n" not in location(url)

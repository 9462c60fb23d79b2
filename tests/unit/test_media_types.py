"""RFC 9110 §8.3.1: media types compare case-insensitively, parameters aside."""

import pytest

from mcp_oauth_shim.media_types import FORM, JSON, essence, is_media_type


@pytest.mark.parametrize(
    ("header", "expected", "matches"),
    [
        ("application/json", JSON, True),
        ("Application/JSON; charset=UTF-8", JSON, True),
        (b"application/json ;charset=utf-8", JSON, True),
        ("application/x-www-form-urlencoded", FORM, True),
        ("APPLICATION/X-WWW-FORM-URLENCODED;charset=utf-8", FORM, True),
        (None, JSON, False),
        ("", FORM, False),
        ("text/plain", JSON, False),
        ("application/jsonx", JSON, False),
        ("application/json-patch+json", JSON, False),
        ("multipart/form-data; boundary=x", FORM, False),
    ],
)
def test_a_content_type_matches_only_its_media_type(header, expected, matches):
    assert is_media_type(header, expected) is matches


def test_the_essence_drops_parameters_and_case():
    assert essence(" Text/HTML ; charset=utf-8") == "text/html"

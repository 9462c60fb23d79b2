"""RFC 7591 metadata texts must be answerable as UTF-8: the surrogate check against the codec."""

from __future__ import annotations

import pytest

from mcp_oauth_shim.errors import InvalidClientMetadataError
from mcp_oauth_shim.rfc7591 import parse_client_metadata

REDIRECT = "http://127.0.0.1:33418/callback"


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    ["Cli", "café ☕", "\U0001f600 emoji", "\ud7ff edge", "\ue000 private use", "\ud800 lone high", "lone low \udfff", "\udbff\udc00"],
)
def test_a_client_name_is_accepted_exactly_when_utf8_can_encode_it(name: str) -> None:
    meta = {"redirect_uris": [REDIRECT], "client_name": name}
    if _utf8_encodable(name):
        assert parse_client_metadata(meta, allowed=(), static=False).client_name == name
    else:
        with pytest.raises(InvalidClientMetadataError, match="client_name must be a string of at most 200 characters"):
            parse_client_metadata(meta, allowed=(), static=False)

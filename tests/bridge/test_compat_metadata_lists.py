"""`OAuthMetadata` refuses an advertised list with no member (RFC 8414 §2), naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_bridge.compat import OAuthMetadata

LISTS = [
    "scopes_supported",
    "response_types_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
]


@pytest.mark.parametrize("field", LISTS)
def test_empty_metadata_list_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError, match=f"{field} cannot be empty"):
        OAuthMetadata(issuer="https://idp.example", token_endpoint="https://idp.example/token", **{field: []})


@pytest.mark.parametrize("field", LISTS)
def test_metadata_list_default_is_kept_out_of_the_document(field: str) -> None:
    metadata = OAuthMetadata(
        issuer="https://idp.example", token_endpoint="https://idp.example/token", authorization_endpoint="https://idp.example/a"
    )
    assert getattr(metadata, field)
    assert field not in metadata.document()

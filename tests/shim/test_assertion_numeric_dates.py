"""RFC 7519 §2 NumericDate in client assertions (RFC 7523): a JSON integer too large for any
float is a number Python's JSON parser reads exactly; it is a malformed date, refused as one,
never an OverflowError that escapes the token endpoint as a 500. The signer is the client
itself (its own registered keys), so any registered client could send one."""

from __future__ import annotations

import pytest

from mcp_oauth_shim.jwt_claims import is_numeric_date
from mcp_oauth_shim.rfc7523 import AssertionRefused

from .assertion_kit import claims, sign
from .test_rfc7523 import check

BEYOND_FLOAT = 10**400


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("use", ["grant", "client_authentication"])
def test_an_assertion_date_beyond_any_float_is_a_claim_type_refusal(claim: str, use: str) -> None:
    with pytest.raises(AssertionRefused) as refused:
        check(sign(claims(**{claim: BEYOND_FLOAT})), use=use)
    assert refused.value.reason == "claim_type"


@pytest.mark.parametrize("value", [BEYOND_FLOAT, -BEYOND_FLOAT], ids=["positive", "negative"])
def test_an_integer_beyond_any_float_is_not_a_numeric_date(value: int) -> None:
    assert is_numeric_date(value) is False

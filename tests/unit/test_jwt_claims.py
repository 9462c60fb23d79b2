"""The JWS registry every JWT check of the shim uses (``jwt_claims.AlgorithmRegistry``): its
header rules, RFC 7515 §4.1.11 (``crit``) and RFC 7519 §7.2 (a base64url-encoded payload)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.errors import JoseError

from mcp_oauth_shim.jwt_claims import algorithm_registry

REGISTRY = algorithm_registry(["RS256", "ES256"])


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256"},
        {"alg": "RS256", "kid": "k1", "typ": "at+jwt"},
        {"alg": "ES256", "kid": "k1", "typ": "JWT"},
    ],
)
def test_a_plain_jwt_header_passes(header: dict[str, Any]) -> None:
    REGISTRY.check_header(header)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "b64": False, "crit": ["b64"]},  # RFC 7797 unencoded payload
        {"alg": "RS256", "b64": True, "crit": ["b64"]},
        {"alg": "RS256", "b64": False},
        {"alg": "RS256", "crit": ["exp"]},  # a critical parameter nobody here understands
    ],
    ids=["unencoded payload", "b64 true", "b64 without crit", "unknown crit"],
)
def test_a_header_no_jwt_may_carry_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises((JoseError, ValueError)):  # what every caller turns into a refusal
        REGISTRY.check_header(header)

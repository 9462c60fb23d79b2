"""The bridge's 403 step-up challenge for a tool the token lacks scopes for, whatever the
token's granted scopes look like.

The challenge lists the granted scopes with the missing ones (MCP 2025-11-25 "Scope Challenge
Handling"), and RFC 6750 §3 allows only scope-tokens there (RFC 6749 §3.3: no space, quote,
backslash, control or non-ASCII character). IdPs put whatever their roles and permissions are
called into list-valued claims (`scp`, `permissions`); a granted value that is no scope-token
cannot be named in the challenge (nor asked for again), so it is left out of it, and the
answer stays the 403 (never a 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.bridge.test_auth import ACCEPT, Protected, call, protected


@pytest.fixture(scope="module")
def server() -> Iterator[Protected]:
    with protected() as running:
        yield running


@pytest.mark.parametrize(
    "granted",
    [
        pytest.param({"scp": ["notes:read", 'say "hi"']}, id="quote-and-space"),
        pytest.param({"scp": ["notes:read", "lecture:é"]}, id="non-ascii"),
        pytest.param({"permissions": ["notes:read", "a\\b"]}, id="backslash"),
        pytest.param({"scp": ["notes:read", "del\x7f"]}, id="control-character"),
    ],
)
def test_a_granted_scope_that_is_no_scope_token_is_left_out_of_the_step_up_challenge(
    server: Protected, granted: dict[str, Any]
) -> None:
    token = server.issuer.token(audience=server.mcp, extra_claims=granted)
    response = httpx.post(
        server.mcp, json=call("read_reports"), headers={**ACCEPT, "authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="notes:read reports:read"' in challenge
    assert response.json()["scope"] == "notes:read reports:read"

"""The shim's access token carries the IdP's access token encrypted (claim ``upt``), so it grows
with it (about 1.8 times: encrypted, then base64 twice). IdPs whose access tokens are JWTs
listing roles and groups (Keycloak, Entra ID, Okta, Cognito) hand out tokens of several KiB;
a token the shim issues for them must still open its own MCP endpoint."""

from __future__ import annotations

import pytest

from tests.issued.test_issued_login import issued_kit, protected_app


@pytest.mark.parametrize("idp_token_length", [1_000, 6_000, 12_000, 16 * 1024], ids=["1k", "6k", "12k", "16k"])
def test_a_token_carrying_a_large_idp_access_token_opens_the_mcp_endpoint(idp_token_length: int) -> None:
    """Up to the largest IdP access token the shim accepts in passthrough mode (16 KiB)."""
    kit = issued_kit()
    issued = kit.shim.context.issued
    assert issued is not None
    idp_token = "eyJ" + "r" * (idp_token_length - 3)
    token = issued.tokens.access_token(client_id="c", subject="alice", scopes="openid", upstream_access_token=idp_token)
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + token})
    assert answer.status_code == 200, answer.headers.get("www-authenticate")

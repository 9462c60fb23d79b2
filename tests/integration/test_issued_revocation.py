"""RFC 7009 in issued-token mode with a real IdP (oidc-provider as a Google-like IdP: opaque
access tokens, good only at its userinfo endpoint): the client holds only the shim's tokens;
revoking the shim's refresh token at the shim revokes the IdP's refresh token inside it, and the
shim's refresh token is dead from then on (RFC 6749 §6), though the shim stores nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.test_issued_tokens import serve
from tests.integration.test_shim_with_real_idp import complete_login, shim_token
from tests.peers.browser import new_browser_client
from tests.peers.idp import GOOGLE_LIKE_ISSUED, IdP, IdPProfile
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture
def idp_profile() -> IdPProfile:
    return GOOGLE_LIKE_ISSUED


@pytest.mark.parametrize("revoked", [False, True], ids=["kept", "revoked"])
def test_an_issued_refresh_token_works_until_revoked_at_the_shim(
    idp: IdP, public_url: str, serve_app: Callable[..., RunningServer], revoked: bool
) -> None:
    server = serve("mcpserver", idp, public_url, serve_app, identity="userinfo")
    with new_browser_client() as http:
        login, _, tokens = complete_login(server, http)
        if revoked:
            form = {"token": tokens["refresh_token"], "client_id": login.client_id}
            answer = http.post(login.metadata["revocation_endpoint"], data=form)
            assert answer.status_code == 200, answer.text
        refreshed = shim_token(http, login, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json().get("error")) == ((400, "invalid_grant") if revoked else (200, None))

"""DESIGN §6.1: no response carries the upstream secret; no log line carries a token, code,
verifier, secret or full signed state."""

import logging

import pytest

from .kit import CLIENT_REDIRECT, make_kit


@pytest.mark.parametrize("send_iss", [True, False])
def test_a_whole_login_leaks_nothing_into_responses_or_logs(caplog, send_iss):
    caplog.set_level(logging.DEBUG)
    kit = make_kit(send_iss=send_iss)
    responses = []
    original = kit.client.request

    def recording(*args, **kwargs):
        response = original(*args, **kwargs)
        responses.append(response)
        return response

    kit.client.request = recording  # type: ignore[method-assign]
    login = kit.login()
    tokens = kit.exchange(login).json()
    refreshed = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"]).json()
    kit.client.post("/oauth/revoke", data={"token": refreshed["refresh_token"], "client_id": login["client_id"]})
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp"):
        kit.client.get(path)

    secret = kit.idp.client_secret
    for response in responses:
        assert secret not in response.text
        assert secret not in str(response.headers)

    sensitive = [secret, login["code"], login["verifier"], tokens["access_token"], tokens["refresh_token"],
                 refreshed["access_token"]]
    for record in caplog.records:
        line = record.getMessage()
        if not record.name.startswith("mcp_oauth_shim") or record.name.startswith("mcp_oauth_shim.dev_idp"):
            continue  # the IdP, the test's browser and client log their own side, not the shim's
        for value in sensitive:
            assert value not in line, f"{record.name} logged a secret value"
        assert "eyJ" not in line  # no JWT or signed payload fragments


def test_upstream_repr_hides_the_secret():
    kit = make_kit()
    assert kit.idp.client_secret not in repr(kit.shim.upstream)
    assert kit.idp.client_secret not in repr(kit.shim)


def test_registration_never_returns_the_secret_whatever_is_asked():
    kit = make_kit()
    for method in ("client_secret_post", "client_secret_basic", "client_secret_jwt"):
        response = kit.client.post(
            "/oauth/register",
            json={"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": method,
                  "client_secret": "please", "client_id": kit.idp.client_id},
        )
        assert kit.idp.client_secret not in response.text
        assert response.json().get("client_id") != kit.idp.client_id

"""Behaviours found by review: each was wrong once."""

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream

from .kit import PUBLIC_URL, make_kit, pkce_pair


def _query(location):
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_consent_page_referrer_policy_lets_browsers_send_their_origin(kit):
    # With "no-referrer" browsers post the form with "Origin: null", which the CSRF check refuses.
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    page = kit.client.get("/oauth/authorize", params=params)
    assert page.headers["referrer-policy"] == "same-origin"
    form = kit.consent_form(params)
    response = kit.client.post(
        "/oauth/consent", data={**form, "decision": "approve"}, headers={"Origin": PUBLIC_URL}, follow_redirects=False
    )
    assert response.status_code == 303


def test_consent_posted_with_a_null_origin_is_refused(kit):
    form = kit.consent_form(kit.authorize_params(kit.register()["client_id"], pkce_pair()[1]))
    response = kit.client.post(
        "/oauth/consent", data={**form, "decision": "approve"}, headers={"Origin": "null"}, follow_redirects=False
    )
    assert response.status_code == 403


HOSTILE_NAMES = ['x"', "x\\", "caf\u00e9", "x\x00", "\u202e", "a" * 5000]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_repeated_parameter_names_never_cause_a_500(kit, name):
    authorize = kit.client.get("/oauth/authorize", params=[(name, "1"), (name, "2")], follow_redirects=False)
    assert authorize.status_code == 400
    token = kit.client.post(
        "/oauth/token", content=f"{name}=1&{name}=2".encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert token.status_code == 400
    callback = kit.client.get("/oauth/callback", params=[(name, "1"), (name, "2")], follow_redirects=False)
    assert callback.status_code == 400


@pytest.mark.parametrize("value", ['a"b', "a\\b", "caf\u00e9", "\r\nX: y", "<script>"])
def test_hostile_parameter_values_never_cause_a_500(kit, value):
    client_id = kit.register()["client_id"]
    for key in ("response_type", "code_challenge_method", "resource", "scope", "state", "prompt", "client_id"):
        params = kit.authorize_params(client_id, pkce_pair()[1], **{key: value})
        assert kit.client.get("/oauth/authorize", params=params, follow_redirects=False).status_code < 500
    for key in ("grant_type", "code", "client_id", "redirect_uri", "code_verifier", "refresh_token", "resource"):
        form = {"grant_type": "authorization_code", "client_id": client_id, key: value}
        assert kit.token(**form).status_code < 500


def test_required_scopes_are_requested_when_the_client_asks_for_none():
    kit = make_kit(required_scopes=["mcp:tools"], scopes_supported=["openid", "mcp:tools"])
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    upstream = _query(kit.approve(params).headers["location"])
    assert "mcp:tools" in upstream["scope"].split()


def test_the_operators_authorize_parameters_win_over_the_clients_hints():
    kit = make_kit(upstream_overrides={"extra_authorize_params": {"prompt": "consent"}})
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1], prompt="none")
    assert _query(kit.approve(params).headers["location"])["prompt"] == "consent"


def test_revocation_accepts_basic_client_identification(kit):
    login = kit.login()
    tokens = kit.exchange(login).json()
    basic = base64.b64encode(f"{login['client_id']}:".encode()).decode()
    response = kit.client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"]}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200
    again = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert again.json()["error"] == "invalid_grant"


def test_static_mode_needs_an_allow_list():
    with pytest.raises(ConfigurationError):
        OAuthShim(
            public_url=PUBLIC_URL,
            upstream=Upstream.oidc(issuer="https://idp.example", client_id="c", client_secret="s"),
            secret_keys=["k" * 40],
            registration="static",
        )


def test_static_mode_accepts_only_the_upstream_client_id():
    signed = make_kit().register()["client_id"]  # same secret key, other mode
    kit = make_kit(registration="static", allowed_redirect_uris=["http://127.0.0.1/callback"])
    for client_id in (signed, "https://client.example/metadata.json"):
        params = kit.authorize_params(client_id, pkce_pair()[1], redirect_uri="http://127.0.0.1:5555/callback")
        assert kit.client.get("/oauth/authorize", params=params).status_code == 400
    params = kit.authorize_params(kit.idp.client_id, pkce_pair()[1], redirect_uri="http://127.0.0.1:5555/callback")
    assert kit.client.get("/oauth/authorize", params=params).status_code == 200
    assert kit.client.get("/.well-known/oauth-authorization-server").json()["client_id_metadata_document_supported"] is False


def test_more_than_a_hundred_parameters_are_refused_not_a_500(kit):
    many = [(f"p{i}", "x") for i in range(150)]
    assert kit.client.get("/oauth/authorize", params=many, follow_redirects=False).status_code == 400
    assert kit.client.get("/oauth/callback", params=many, follow_redirects=False).status_code == 400
    body = "&".join(f"p{i}=x" for i in range(150)).encode()
    response = kit.client.post("/oauth/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"

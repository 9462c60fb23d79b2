"""POST /oauth/consent: CSRF, framing, deny, and what (only) reaches the IdP (DESIGN §6.3, §6.6)."""

from urllib.parse import parse_qs, urlsplit

import pytest

from .kit import CLIENT_REDIRECT, IDP_ISSUER, PUBLIC_URL, RESOURCE, make_kit, pkce_pair


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def params(kit):
    return kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])


def test_approval_redirects_to_the_idp_with_the_shims_own_client_and_callback(kit, params):
    response = kit.approve(params)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(IDP_ISSUER + "/authorize?")
    upstream = _query(location)
    assert upstream["client_id"] == kit.idp.client_id
    assert upstream["redirect_uri"] == PUBLIC_URL + "/oauth/callback"
    assert upstream["code_challenge"] == params["code_challenge"]
    assert upstream["code_challenge_method"] == "S256"
    assert upstream["response_type"] == "code"
    assert upstream["resource"] == RESOURCE
    assert upstream["scope"] == "openid profile offline_access"
    assert upstream["state"] != params["state"]


def test_client_supplied_parameters_never_reach_the_idp(kit, params):
    hostile = {
        **params,
        "audience": "https://victim-api.example",
        "resource": "http://127.0.0.1:8000/",
        "prompt": "none",
        "login_hint": "alice@example.com",
        "acr_values": "weak",
        "claims": '{"id_token":{"email":null}}',
        "nonce": "client-nonce",
        "max_age": "0",
    }
    upstream = _query(kit.approve(hostile).headers["location"])
    assert "audience" not in upstream
    assert upstream["resource"] == RESOURCE
    assert upstream["client_id"] == kit.idp.client_id
    for name in ("acr_values", "claims", "nonce", "max_age", "request_uri", "response_mode"):
        assert name not in upstream
    assert upstream["prompt"] == "none"  # allow-listed OIDC login-page hints pass
    assert upstream["login_hint"] == "alice@example.com"


def test_auth0_style_audience_is_sent_as_configured():
    kit = make_kit(upstream_overrides={"audience_param": "audience", "audience": "https://api.example/"})
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    upstream = _query(kit.approve(params).headers["location"])
    assert upstream["audience"] == "https://api.example/"
    assert "resource" not in upstream


def test_deny_reports_access_denied_to_the_client_with_iss(kit, params):
    response = kit.approve(params, decision="deny")
    assert response.status_code == 302
    assert response.headers["location"].startswith(CLIENT_REDIRECT)
    query = _query(response.headers["location"])
    assert query == {
        "error": "access_denied",
        "error_description": "The user denied access.",
        "state": "client-state-123",
        "iss": PUBLIC_URL,
    }


def test_consent_without_the_csrf_cookie_is_refused(kit, params):
    form = kit.consent_form(params)
    kit.client.cookies.clear()
    response = kit.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers


def test_consent_ticket_from_another_browser_is_refused(kit, params):
    form = kit.consent_form(params)
    other = make_kit()
    other.client.get("/oauth/authorize", params=params)  # the attacker's own CSRF cookie
    response = other.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    assert response.status_code in (400, 403)
    assert "location" not in response.headers


def test_consent_posted_from_another_origin_is_refused(kit, params):
    form = kit.consent_form(params)
    response = kit.client.post(
        "/oauth/consent",
        data={**form, "decision": "approve"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403


@pytest.mark.parametrize("mutate", ["tamper", "empty", "missing", "huge"])
def test_forged_consent_tickets_are_refused(kit, params, mutate):
    form = kit.consent_form(params)
    ticket = form["ticket"]
    data = {"decision": "approve"}
    if mutate == "tamper":
        data["ticket"] = ticket[:-4] + "AAAA"
    elif mutate == "empty":
        data["ticket"] = ""
    elif mutate == "huge":
        data["ticket"] = "x" * 20000
    response = kit.client.post("/oauth/consent", data=data, follow_redirects=False)
    assert response.status_code in (400, 413)
    assert "location" not in response.headers


def test_expired_consent_ticket_is_refused(params):
    from mcp_oauth_shim import Lifetimes

    kit = make_kit(lifetimes=Lifetimes(consent=-1))
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    response = kit.approve(params)
    assert response.status_code == 400
    assert "expired" in response.text


def test_consent_must_choose_approve_or_deny(kit, params):
    form = kit.consent_form(params)
    response = kit.client.post("/oauth/consent", data={**form, "decision": "maybe"}, follow_redirects=False)
    assert response.status_code == 400


def test_consent_requires_a_form_body(kit, params):
    form = kit.consent_form(params)
    response = kit.client.post("/oauth/consent", json={**form, "decision": "approve"}, follow_redirects=False)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"],
)
def test_consent_accepts_a_form_in_any_spelling_of_its_media_type(kit, params, content_type):
    from urllib.parse import urlencode

    form = kit.consent_form(params)
    body = urlencode({**form, "decision": "approve"})
    response = kit.client.post(
        "/oauth/consent", content=body, headers={"Content-Type": content_type}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_approval_sets_an_httponly_binding_cookie(kit, params):
    response = kit.approve(params)
    cookies = response.headers.get_list("set-cookie")
    flow = [c for c in cookies if c.startswith("mcp-shim-flow-")]
    assert flow and "HttpOnly" in flow[0] and "SameSite=lax" in flow[0] and "Path=/" in flow[0]


def test_https_deployments_use_host_prefixed_secure_cookies():
    from mcp_oauth_shim.context import ShimContext

    kit = make_kit()
    ctx = kit.shim.context
    https_ctx = ShimContext(**{**ctx.__dict__, "public_url": "https://api.example.com"})
    assert https_ctx.cookie_name("mcp-shim-csrf") == "__Host-mcp-shim-csrf"
    assert https_ctx.secure_cookies is True

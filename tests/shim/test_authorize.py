"""GET /oauth/authorize (RFC 6749 §4.1.1, §4.1.2.1; RFC 7636; RFC 8707) and the consent page."""

from urllib.parse import parse_qs, urlsplit

import pytest

from .kit import CLIENT_REDIRECT, PUBLIC_URL, pkce_pair


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def client_id(kit):
    return kit.register()["client_id"]


@pytest.fixture
def challenge():
    return pkce_pair()[1]


def test_valid_request_shows_the_consent_page_and_does_not_touch_the_idp(kit, client_id, challenge):
    response = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge), follow_redirects=False)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert 'name="ticket"' in response.text
    assert "127.0.0.1:53682" in response.text  # the redirect host is shown
    assert "location" not in response.headers


def test_consent_page_cannot_be_framed_or_cached(kit, client_id, challenge):
    response = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "name",
    ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "Evil &amp; Co", "{{7*7}} ${x}"],
)
def test_client_name_is_escaped_on_the_consent_page(kit, challenge, name):
    client_id = kit.register(client_name=name)["client_id"]
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge)).text
    assert name not in page or name == "{{7*7}} ${x}"
    assert "<script>alert" not in page
    assert "<img src=x" not in page


def test_client_without_name_is_called_unnamed(kit, challenge):
    client_id = kit.register(client_name=None)["client_id"]
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge)).text
    assert "An unnamed application" in page


NOT_REDIRECTED = [
    ({"client_id": None}, "invalid_client"),
    ({"client_id": "forged-client-id"}, "invalid_client"),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ({"redirect_uri": "http://127.0.0.1:53682/callback/../evil"}, "invalid_request"),
    ({"redirect_uri": "http://127.0.0.1:53682/other"}, "invalid_request"),
    ({"redirect_uri": "http://localhost:53682/callback"}, "invalid_request"),
    ({"redirect_uri": "javascript:alert(1)"}, "invalid_request"),
    ({"redirect_uri": "http://127.0.0.1:53682/callback#x"}, "invalid_request"),
    ({"redirect_uri": "http://evil@127.0.0.1:53682/callback"}, "invalid_request"),
    ({"state": "s" * 5000}, "invalid_request"),
]


@pytest.mark.parametrize(("overrides", "error"), NOT_REDIRECTED)
def test_untrusted_client_or_redirect_uri_is_never_redirected_to(kit, client_id, challenge, overrides, error):
    response = kit.client.get(
        "/oauth/authorize", params=kit.authorize_params(client_id, challenge, **overrides), follow_redirects=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert error in response.text


def test_tampered_client_id_is_refused(kit, challenge):
    client_id = kit.register()["client_id"]
    forged = client_id[:-3] + ("AAA" if not client_id.endswith("AAA") else "BBB")
    response = kit.client.get("/oauth/authorize", params=kit.authorize_params(forged, challenge), follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_loopback_redirect_uri_may_use_any_port(kit, challenge):
    client_id = kit.register(redirect_uris=["http://127.0.0.1/callback"])["client_id"]
    params = kit.authorize_params(client_id, challenge, redirect_uri="http://127.0.0.1:61234/callback")
    assert kit.client.get("/oauth/authorize", params=params).status_code == 200


def test_repeated_parameters_are_refused(kit, client_id, challenge):
    params = list(kit.authorize_params(client_id, challenge).items()) + [("redirect_uri", "https://evil.example/cb")]
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


REDIRECTED = [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": None}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"code_challenge": "x" * 43 + "!"}, "invalid_request"),
    ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ({"resource": "http://127.0.0.1:8001/mcp"}, "invalid_target"),
    ({"resource": "http://127.0.0.1:8000/other"}, "invalid_target"),
    ({"resource": "not a url"}, "invalid_target"),
    ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "request_uri_not_supported"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"response_mode": "form_post"}, "invalid_request"),
]


@pytest.mark.parametrize(("overrides", "error"), REDIRECTED)
def test_bad_requests_from_a_trusted_client_are_redirected_with_error_state_and_iss(
    kit, client_id, challenge, overrides, error
):
    response = kit.client.get(
        "/oauth/authorize", params=kit.authorize_params(client_id, challenge, **overrides), follow_redirects=False
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CLIENT_REDIRECT + "?")
    query = _query(location)
    assert query["error"] == error
    assert query["state"] == "client-state-123"
    assert query["iss"] == PUBLIC_URL


@pytest.mark.parametrize(
    "resource",
    ["http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp/", "HTTP://127.0.0.1:8000/mcp", "http://127.0.0.1:8000", None],
)
def test_resource_naming_this_server_is_accepted(kit, client_id, challenge, resource):
    params = kit.authorize_params(client_id, challenge, resource=resource)
    assert kit.client.get("/oauth/authorize", params=params).status_code == 200


def test_redirect_uri_may_be_omitted_when_exactly_one_is_registered(kit, client_id, challenge):
    params = kit.authorize_params(client_id, challenge, redirect_uri=None)
    assert kit.client.get("/oauth/authorize", params=params).status_code == 200


def test_redirect_uri_is_required_when_several_are_registered(kit, challenge):
    client_id = kit.register(redirect_uris=[CLIENT_REDIRECT, "https://app.example/cb"])["client_id"]
    response = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, redirect_uri=None))
    assert response.status_code == 400


def test_default_scopes_apply_when_the_client_sends_none(kit, client_id, challenge):
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge)).text
    for scope in ("openid", "profile", "offline_access"):
        assert f"<li>{scope}</li>" in page


def test_unknown_scopes_are_dropped(kit, client_id, challenge):
    params = kit.authorize_params(client_id, challenge, scope="openid admin:everything")
    page = kit.client.get("/oauth/authorize", params=params).text
    assert "<li>openid</li>" in page
    assert "admin:everything" not in page

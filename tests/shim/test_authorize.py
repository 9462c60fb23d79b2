"""GET /oauth/authorize (RFC 6749 §4.1.1, §4.1.2.1; RFC 7636; RFC 8707) and the consent page."""

import html
from urllib.parse import parse_qs, urlsplit

import pytest

from .kit import CLIENT_REDIRECT, PUBLIC_URL, make_kit, pkce_pair


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


# Errors found after the client and its redirect URI were validated (RFC 6749 §4.1.2.1 allows
# redirecting these); the error code and a word the page must show to name the problem.
AFTER_CLIENT_CHECKS = [
    ({"response_type": "token"}, "unsupported_response_type", "response_type=token"),
    ({"response_type": None}, "unsupported_response_type", "response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type", "response_type"),
    ({"code_challenge": None}, "invalid_request", "code_challenge is required"),
    ({"code_challenge_method": "plain"}, "invalid_request", "S256"),
    ({"code_challenge_method": None}, "invalid_request", "S256"),
    ({"code_challenge": "short"}, "invalid_request", "code_challenge"),
    ({"code_challenge": "x" * 43 + "!"}, "invalid_request", "code_challenge"),
    ({"resource": "https://other.example/mcp"}, "invalid_target", "only issues tokens for"),
    ({"resource": "http://127.0.0.1:8001/mcp"}, "invalid_target", "only issues tokens for"),
    ({"resource": "http://127.0.0.1:8000/other"}, "invalid_target", "only issues tokens for"),
    ({"resource": "not a url"}, "invalid_target", "only issues tokens for"),
    ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "request_uri_not_supported", "request_uri"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", "request is not supported"),
    ({"response_mode": "fragment"}, "invalid_request", "response_mode"),
    ({"response_mode": "form_post"}, "invalid_request", "response_mode"),
]


@pytest.mark.parametrize(("overrides", "error", "problem"), AFTER_CLIENT_CHECKS)
def test_bad_requests_from_a_self_registered_client_are_shown_as_a_page_not_redirected(
    kit, client_id, challenge, overrides, error, problem
):
    response = kit.client.get(
        "/oauth/authorize", params=kit.authorize_params(client_id, challenge, **overrides), follow_redirects=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert f"<code>{error}</code>" in response.text
    assert html.escape(problem) in response.text


PHISHING_REDIRECT = "https://attacker.example/phish"


def test_self_registered_https_redirect_uri_is_not_an_open_redirector(kit, challenge):
    client_id = kit.register(redirect_uris=[PHISHING_REDIRECT])["client_id"]
    params = kit.authorize_params(client_id, challenge, redirect_uri=PHISHING_REDIRECT, code_challenge=None)
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "attacker.example" not in response.text
    assert "refresh" not in response.text.lower()  # no meta refresh either


def test_error_page_before_consent_has_the_consent_page_hardening(kit, client_id, challenge):
    params = kit.authorize_params(client_id, challenge, response_type="token")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_error_page_escapes_what_the_client_sent(kit, client_id, challenge):
    params = kit.authorize_params(client_id, challenge, response_type="<script>x</script>")
    page = kit.client.get("/oauth/authorize", params=params, follow_redirects=False).text
    assert "<script>x" not in page
    assert "&lt;script&gt;x" in page


def test_error_page_names_no_redirect_uri_and_links_nowhere(kit, client_id, challenge):
    params = kit.authorize_params(client_id, challenge, code_challenge=None)
    page = kit.client.get("/oauth/authorize", params=params, follow_redirects=False).text
    assert CLIENT_REDIRECT not in page
    assert "client-state-123" not in page
    assert "<a " not in page and "<form" not in page


@pytest.fixture
def static_kit():
    """registration="static": every client uses the upstream client_id and one of the
    operator's allow-listed redirect URIs."""
    return make_kit(registration="static", allowed_redirect_uris=[CLIENT_REDIRECT])


@pytest.mark.parametrize(("overrides", "error", "problem"), AFTER_CLIENT_CHECKS)
def test_bad_requests_to_an_operator_allowed_redirect_uri_are_redirected_with_error_state_and_iss(
    static_kit, challenge, overrides, error, problem
):
    params = static_kit.authorize_params(static_kit.idp.client_id, challenge, **overrides)
    response = static_kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CLIENT_REDIRECT + "?")
    query = _query(location)
    assert query["error"] == error
    assert problem.split("=")[0] in query["error_description"]
    assert query["state"] == "client-state-123"
    assert query["iss"] == PUBLIC_URL


def test_operator_allowed_redirect_uri_of_a_registered_client_gets_error_redirects(challenge):
    intranet = "http://intranet.corp.example/cb"
    kit = make_kit(allowed_redirect_uris=[intranet])
    client_id = kit.register(redirect_uris=[intranet])["client_id"]
    params = kit.authorize_params(client_id, challenge, redirect_uri=intranet, response_type="token")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 302
    assert _query(response.headers["location"])["error"] == "unsupported_response_type"


def test_other_redirect_uris_of_a_client_with_an_allowed_one_still_get_a_page(challenge):
    intranet = "http://intranet.corp.example/cb"
    kit = make_kit(allowed_redirect_uris=[intranet])
    client_id = kit.register(redirect_uris=[intranet, PHISHING_REDIRECT])["client_id"]
    params = kit.authorize_params(client_id, challenge, redirect_uri=PHISHING_REDIRECT, response_type="token")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


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

"""GET /oauth/callback (DESIGN §6.4): signed state, this browser, once, in time, right issuer."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mcp_oauth_shim import Lifetimes

from .kit import CLIENT_REDIRECT, PUBLIC_URL, make_kit, pkce_pair


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _until_callback(kit):
    """Approve a login and let the IdP answer; returns the callback URL (not yet visited)."""
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    consent = kit.approve(params)
    return kit.idp_round_trip(consent.headers["location"])


def _with(callback_url: str, **changes: str | None) -> str:
    parts = urlsplit(callback_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return f"{parts.path}?{urlencode(query)}"


@pytest.mark.parametrize("send_iss", [True, False])
def test_callback_relays_a_wrapped_code_with_the_clients_state_and_the_shims_iss(send_iss):
    kit = make_kit(send_iss=send_iss)
    callback = _until_callback(kit)
    upstream_code = _query(callback)["code"]
    response = kit.callback(callback)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CLIENT_REDIRECT + "?")
    query = _query(location)
    assert query["state"] == "client-state-123"
    assert query["iss"] == PUBLIC_URL
    assert query["code"] != upstream_code
    assert response.headers["cache-control"] == "no-store"


def test_callback_is_honoured_only_once(kit):
    callback = _until_callback(kit)
    assert kit.callback(callback).status_code == 302
    replay = kit.callback(callback)
    assert replay.status_code == 403
    assert "location" not in replay.headers


def test_callback_in_a_browser_that_did_not_approve_is_refused(kit):
    callback = _until_callback(kit)
    kit.client.cookies.clear()
    response = kit.callback(callback)
    assert response.status_code == 403
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "state",
    ["", "garbage", "a.b.c", "x" * 10000, None],
)
def test_callback_with_a_state_we_did_not_sign_is_refused(kit, state):
    callback = _until_callback(kit)
    response = kit.client.get(_with(callback, state=state), follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_tampered_state_is_refused(kit):
    callback = _until_callback(kit)
    state = _query(callback)["state"]
    response = kit.client.get(_with(callback, state=state[:-2] + ("xx" if state[-2:] != "xx" else "yy")), follow_redirects=False)
    assert response.status_code == 400


def test_expired_state_is_refused():
    kit = make_kit(lifetimes=Lifetimes(state=-1))
    response = kit.callback(_until_callback(kit))
    assert response.status_code == 400
    assert "expired" in response.text


def test_code_from_another_issuer_is_refused_mix_up(kit):
    callback = _until_callback(kit)
    response = kit.client.get(_with(callback, iss="https://attacker.example"), follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers


def test_missing_iss_is_refused_when_the_idp_promises_it():
    kit = make_kit(send_iss=True)
    callback = _until_callback(kit)
    assert kit.shim.context.upstream_client._metadata.raw.get("authorization_response_iss_parameter_supported")
    response = kit.client.get(_with(callback, iss=None), follow_redirects=False)
    assert response.status_code == 403


def test_missing_iss_is_accepted_from_an_idp_that_never_sends_it():
    kit = make_kit(send_iss=False)
    assert kit.callback(_until_callback(kit)).status_code == 302


@pytest.mark.parametrize(
    ("idp_error", "relayed"),
    [("access_denied", "access_denied"), ("login_required", "login_required"), ("server_error", "server_error"),
     ("<script>", "server_error"), ("invalid_client", "server_error")],
)
def test_idp_errors_are_relayed_to_the_client_as_standard_codes(kit, idp_error, relayed):
    callback = _until_callback(kit)
    response = kit.client.get(_with(callback, code=None, error=idp_error, error_description="<b>x</b>"), follow_redirects=False)
    assert response.status_code == 302
    query = _query(response.headers["location"])
    assert query["error"] == relayed
    assert query["state"] == "client-state-123"
    assert query["iss"] == PUBLIC_URL
    assert "<b>" not in query.get("error_description", "")


def test_callback_without_code_reports_server_error_to_the_client(kit):
    callback = _until_callback(kit)
    response = kit.client.get(_with(callback, code=None), follow_redirects=False)
    assert _query(response.headers["location"])["error"] == "server_error"


def test_repeated_callback_parameters_are_refused(kit):
    callback = _until_callback(kit)
    response = kit.client.get(callback + "&code=injected", follow_redirects=False)
    assert response.status_code == 400

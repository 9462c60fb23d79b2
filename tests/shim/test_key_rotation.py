"""Rotating the shim's ``secret_keys``: new key prepended, later the old one dropped.

The shim keeps no state, so "rotation" is a shim started with other keys in front of the same
IdP, receiving what a shim with the old keys handed out. With ``[new, old]`` every login that
was in flight under ``[old]`` completes, whichever step comes first after the change; with
``[new]`` everything sealed under ``old`` is refused with an RFC-shaped error, never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim

from .kit import RESOURCE, Kit, make_kit, pkce_pair

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40


def with_keys(kit: Kit, keys: list[str]) -> Kit:
    """The same IdP, the same browser cookies, a shim with ``keys``."""
    shim = OAuthShim(
        public_url=kit.shim.public_url,
        resource=RESOURCE,
        upstream=kit.shim.upstream,
        secret_keys=keys,
        http_client=kit.shim.upstream_client.http,
    )
    client = TestClient(shim.app, base_url=kit.shim.public_url)
    client.cookies.update(kit.client.cookies)
    return Kit(idp=kit.idp, shim=shim, client=client, idp_client=kit.idp_client)


@pytest.fixture
def old() -> Kit:
    return with_keys(make_kit(), [OLD])


def consent_form(kit: Kit, client_id: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    return kit.consent_form(kit.authorize_params(client_id, challenge)), verifier


def post_consent(kit: Kit, form: dict[str, str]) -> str:
    response = kit.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return kit.idp_round_trip(response.headers["location"])


def relay(kit: Kit, callback_url: str) -> str:
    response = kit.callback(callback_url)
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


def exchange(kit: Kit, client_id: str, code: str, verifier: str) -> Any:
    return kit.exchange({"client_id": client_id, "code": code, "verifier": verifier})


def refresh(kit: Kit, client_id: str, refresh_token: str) -> Any:
    return kit.token(grant_type="refresh_token", refresh_token=refresh_token, client_id=client_id)


# The steps of a login in order; a rotation to [new, old] happens just before the named one.
STEPS = ["consent", "callback", "token", "refresh"]


@pytest.mark.parametrize("first_after_rotation", STEPS)
def test_a_login_in_flight_completes_after_a_new_key_is_prepended(old: Kit, first_after_rotation: str) -> None:
    kit = old
    rotated = False

    def at(step: str) -> Kit:
        nonlocal kit, rotated
        if step == first_after_rotation and not rotated:
            kit, rotated = with_keys(kit, [NEW, OLD]), True
        return kit

    client_id = old.register()["client_id"]
    form, verifier = consent_form(old, client_id)
    callback_url = post_consent(at("consent"), form)
    code = relay(at("callback"), callback_url)
    tokens = exchange(at("token"), client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    refreshed = refresh(at("refresh"), client_id, tokens.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert rotated


def test_values_sealed_under_the_new_key_are_accepted_after_the_old_one_is_dropped(old: Kit) -> None:
    both = with_keys(old, [NEW, OLD])
    client_id = both.register()["client_id"]
    form, verifier = consent_form(both, client_id)
    code = relay(both, post_consent(both, form))
    tokens = exchange(both, client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    new_only = with_keys(both, [NEW])
    refreshed = refresh(new_only, client_id, tokens.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text


@pytest.fixture
def sealed_under_old(old: Kit) -> dict[str, Any]:
    """A client registered under the new key (accepted by both sides of the change), and a
    code and refresh token sealed under the old key while the old key still signed."""
    client_id = with_keys(old, [NEW, OLD]).register()["client_id"]
    signing_old = with_keys(old, [OLD, NEW])  # step 1 of the procedure: old signs, new verifies
    form, verifier = consent_form(signing_old, client_id)
    code = relay(signing_old, post_consent(signing_old, form))
    tokens = exchange(signing_old, client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    form2, verifier2 = consent_form(signing_old, client_id)
    code2 = relay(signing_old, post_consent(signing_old, form2))
    return {
        "kit": signing_old,
        "client_id": client_id,
        "code": code2,
        "verifier": verifier2,
        "refresh_token": tokens.json()["refresh_token"],
    }


GRANTS = {
    "authorization code": lambda kit, v: exchange(kit, v["client_id"], v["code"], v["verifier"]),
    "refresh token": lambda kit, v: refresh(kit, v["client_id"], v["refresh_token"]),
}


@pytest.mark.parametrize("grant", GRANTS.values(), ids=GRANTS.keys())
def test_a_grant_sealed_under_a_dropped_key_is_invalid_grant(sealed_under_old: dict[str, Any], grant: Any) -> None:
    new_only = with_keys(sealed_under_old["kit"], [NEW])
    answer = grant(new_only, sealed_under_old)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"]


def test_a_client_id_sealed_under_a_dropped_key_is_invalid_client(old: Kit) -> None:
    client_id = old.register()["client_id"]
    new_only = with_keys(old, [NEW])
    answer = refresh(new_only, client_id, "whatever")
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] == "invalid_client"
    assert "register again" in answer.json()["error_description"]


BROWSER_STEPS = ["consent", "callback"]


@pytest.mark.parametrize("step", BROWSER_STEPS)
def test_a_sign_in_page_sealed_under_a_dropped_key_asks_to_start_again(old: Kit, step: str) -> None:
    both = with_keys(old, [NEW, OLD])
    client_id = both.register()["client_id"]  # under the new key: the client itself stays valid
    signing_old = with_keys(old, [OLD, NEW])
    form, _ = consent_form(signing_old, client_id)
    if step == "consent":
        new_only = with_keys(signing_old, [NEW])
        answer = new_only.client.post("/oauth/consent", data={**form, "decision": "approve"}, follow_redirects=False)
    else:
        callback_url = post_consent(signing_old, form)
        new_only = with_keys(signing_old, [NEW])
        answer = new_only.callback(callback_url)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "start the sign-in again" in answer.text

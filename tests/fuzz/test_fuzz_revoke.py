"""``POST /oauth/revoke`` (RFC 7009) with arbitrary forms, client authentication and content types.

Properties: 200 (RFC 7009 §2.2: also for a token that is unknown or not the caller's) or an
RFC 7009 §2.2.1 JSON error; never a 5xx other than an IdP fault; nothing planted or secret
echoed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from .properties import REVOCATION_ERRORS, assert_json_error, assert_nothing_leaks, captured_logs
from .setups import FuzzKit, build_kit
from .strategies import FORM, FUZZ, client_authorization, content_types, form_body, hostile_text, hostile_urls, wire

KNOWN = ["token", "token_type_hint", "client_id", "client_secret"]
SECRET_FIELDS = ["token", "client_secret"]


@dataclass
class RevokeTarget:
    kit: FuzzKit
    client_id: str
    requests: list[dict[str, str]]


@pytest.fixture(scope="module")
def target() -> RevokeTarget:
    kit = build_kit()
    login = kit.login()
    tokens = kit.exchange(login).json()
    client_id = login["client_id"]
    return RevokeTarget(
        kit,
        client_id,
        [
            {"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": client_id},
            {"token": tokens["access_token"], "token_type_hint": "access_token", "client_id": client_id},
        ],
    )


@FUZZ
@given(data=st.data())
def test_revoke_answers_200_or_an_rfc7009_error(target: RevokeTarget, data: st.DataObject) -> None:
    body, secrets = data.draw(form_body(data.draw(st.sampled_from(target.requests)), KNOWN, SECRET_FIELDS))
    authorization, header_secrets = data.draw(client_authorization(target.client_id))
    headers = {"content-type": data.draw(content_types)}
    if authorization is not None:
        headers["authorization"] = authorization
    target.kit.client.cookies.clear()
    with captured_logs(target.kit.public_url) as logs:
        response = target.kit.client.post("/oauth/revoke", content=body, headers=wire(headers))
    event(f"status {response.status_code}")
    if response.status_code == 200:
        assert "no-store" in response.headers.get("cache-control", "")
    else:
        assert_json_error(response, REVOCATION_ERRORS, used_authorization_header=authorization is not None)
    assert_nothing_leaks(response, logs, [*target.kit.secrets, *secrets, *header_secrets])


@FUZZ
@given(data=st.data())
def test_revoke_client_authentication_failure_is_401_with_www_authenticate(target: RevokeTarget, data: st.DataObject) -> None:
    """RFC 7009 §2.1 refers to RFC 6749 §5.2: a failed Authorization header is a 401."""
    authorization, _ = data.draw(client_authorization(target.client_id, always=True))
    assume(authorization is not None)
    assert authorization is not None
    form = dict(data.draw(st.sampled_from(target.requests)))
    if data.draw(st.booleans()):
        form["client_id"] = data.draw(st.one_of(hostile_text, hostile_urls))
    target.kit.client.cookies.clear()
    response = target.kit.client.post(
        "/oauth/revoke", content=urlencode(form).encode(), headers=wire({"content-type": FORM, "authorization": authorization})
    )
    if response.status_code != 200 and response.json().get("error") == "invalid_client":
        assert response.status_code == 401, (authorization, response.json())
        assert response.headers.get("www-authenticate"), response.headers

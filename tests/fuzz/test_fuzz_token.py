"""``POST /oauth/token`` with arbitrary forms for every grant, client authentication headers and
content types.

Properties: a token answer or an RFC 6749 §5.2 JSON error (401 with ``WWW-Authenticate`` when
the client authenticated with the Authorization header); never a 5xx other than an IdP fault;
grants other than authorization_code and refresh_token never reach the IdP; nothing planted or
secret echoed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from .properties import TOKEN_ERRORS, assert_json_error, assert_nothing_leaks, captured_logs
from .setups import CLIENT_REDIRECT, FuzzKit, build_kit, pkce_pair
from .strategies import FORM, FUZZ, client_authorization, content_types, form_body, hostile_text, hostile_urls, wire

KNOWN = [
    "grant_type",
    "code",
    "code_verifier",
    "redirect_uri",
    "client_id",
    "resource",
    "refresh_token",
    "scope",
    "client_secret",
    "audience",
    "username",
    "password",
    "assertion",
    "subject_token",
]
SECRET_FIELDS = ["code", "code_verifier", "refresh_token", "client_secret", "password", "assertion", "subject_token"]
OTHER_GRANTS = [
    "password",
    "client_credentials",
    "implicit",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:device_code",
]


@dataclass
class TokenTarget:
    kit: FuzzKit
    client_id: str
    code_request: dict[str, str]
    refresh_request: dict[str, str]


@pytest.fixture(scope="module")
def target() -> TokenTarget:
    kit = build_kit()
    login = kit.login()
    refresh = kit.exchange(login).json()["refresh_token"]
    verifier, challenge = pkce_pair()
    code_request = {
        "grant_type": "authorization_code",
        "code": kit.sealed_code(login["client_id"], challenge),
        "code_verifier": verifier,
        "redirect_uri": CLIENT_REDIRECT,
        "client_id": login["client_id"],
        "resource": kit.resource,
    }
    refresh_request = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": login["client_id"],
        "resource": kit.resource,
    }
    return TokenTarget(kit, login["client_id"], code_request, refresh_request)


@st.composite
def token_request(draw: st.DrawFn, target: TokenTarget) -> tuple[bytes, dict[str, str], bool, list[str]]:
    valid = draw(st.sampled_from([target.code_request, target.refresh_request]))
    body, secrets = draw(form_body(valid, KNOWN, SECRET_FIELDS))
    authorization, header_secrets = draw(client_authorization(target.client_id))
    headers = {"content-type": draw(content_types)}
    if authorization is not None:
        headers["authorization"] = authorization
    return body, headers, authorization is not None, secrets + header_secrets


def _post(kit: FuzzKit, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    kit.client.cookies.clear()
    return kit.client.post("/oauth/token", content=body, headers=wire(headers))


@FUZZ
@given(data=st.data())
def test_token_answers_tokens_or_an_rfc6749_error(target: TokenTarget, data: st.DataObject) -> None:
    body, headers, used_header, secrets = data.draw(token_request(target))
    with captured_logs(target.kit.public_url) as logs:
        response = _post(target.kit, body, headers)
    event(f"status {response.status_code}")
    if response.status_code == 200:
        answer = response.json()
        assert isinstance(answer.get("access_token"), str) and answer["access_token"]
        assert answer["token_type"] == "Bearer"
        assert "id_token" not in answer  # issued to the shim, not to the client
        assert "no-store" in response.headers["cache-control"]
    else:
        assert_json_error(response, TOKEN_ERRORS, used_authorization_header=used_header)
    assert_nothing_leaks(response, logs, [*target.kit.secrets, *secrets])


@FUZZ
@given(
    grant=st.one_of(st.sampled_from(OTHER_GRANTS), hostile_text.filter(lambda g: g not in ("authorization_code", "refresh_token"))),
    data=st.data(),
)
def test_token_never_sends_another_grant_to_the_idp(target: TokenTarget, grant: str, data: st.DataObject) -> None:
    """RFC 6749 §5.2 unsupported_grant_type, decided locally: the shim's secret is never
    attached to a password, client credentials or token exchange grant."""
    valid = {**data.draw(st.sampled_from([target.code_request, target.refresh_request])), "grant_type": grant}
    body, _ = data.draw(form_body(valid, [k for k in KNOWN if k != "grant_type"], SECRET_FIELDS))
    transport = target.kit.idp_transport
    assert transport is not None
    before = len(transport.paths)
    response = _post(target.kit, body, {"content-type": FORM})
    assert_json_error(response, TOKEN_ERRORS)
    assert response.status_code == 400
    assert transport.paths[before:] == []


@FUZZ
@given(data=st.data())
def test_token_client_authentication_failure_is_401_with_www_authenticate(target: TokenTarget, data: st.DataObject) -> None:
    """RFC 6749 §5.2: a client that tried the Authorization header and failed gets 401 with
    ``WWW-Authenticate``, whatever scheme or garbage it sent."""
    authorization, _ = data.draw(client_authorization(target.client_id, always=True))
    assume(authorization is not None)
    assert authorization is not None
    form = dict(data.draw(st.sampled_from([target.code_request, target.refresh_request])))
    if data.draw(st.booleans()):
        form["client_id"] = data.draw(st.one_of(hostile_text, hostile_urls))  # someone else, or nobody
    response = _post(target.kit, urlencode(form).encode(), {"content-type": FORM, "authorization": authorization})
    body = response.json()
    if body.get("error") == "invalid_client":
        assert response.status_code == 401, (authorization, body)
        assert response.headers.get("www-authenticate"), response.headers

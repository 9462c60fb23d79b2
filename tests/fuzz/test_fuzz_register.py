"""``POST /oauth/register`` (RFC 7591) with arbitrary JSON bodies, byte strings and content types.

Properties: 201 with a public client (``token_endpoint_auth_method: none``, no secret, only
the redirect URIs asked for) or an RFC 7591 §3.2.2 JSON error; a body that is not declared as
JSON is refused; never a 5xx; the upstream secret and the shim's keys never appear.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .properties import REGISTRATION_ERRORS, assert_json_error, assert_nothing_leaks, captured_logs
from .setups import CLIENT_REDIRECT, FuzzKit, build_kit
from .strategies import FUZZ, content_types, hostile_text, hostile_urls, wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)

FIELDS = {
    "redirect_uris": st.one_of(
        st.lists(st.one_of(st.just(CLIENT_REDIRECT), hostile_urls), max_size=4), json_values
    ),
    "client_name": st.one_of(hostile_text, json_values),
    "client_uri": st.one_of(hostile_urls, json_values),
    "grant_types": st.one_of(
        st.lists(st.sampled_from(["authorization_code", "refresh_token", "password", "implicit", ""]), max_size=3),
        json_values,
    ),
    "response_types": st.one_of(st.lists(st.sampled_from(["code", "token", "id_token"]), max_size=2), json_values),
    "token_endpoint_auth_method": st.one_of(
        st.sampled_from(["none", "client_secret_post", "client_secret_basic", "private_key_jwt"]), json_values
    ),
    "application_type": st.one_of(st.sampled_from(["native", "web", "service"]), json_values),
    "scope": st.one_of(hostile_text, json_values),
    "client_secret": hostile_text,
    "jwks": json_values,
    "software_statement": hostile_text,
}


@st.composite
def registration_body(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["metadata", "metadata", "metadata", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = {"redirect_uris": [CLIENT_REDIRECT], "client_name": "Fuzzed"}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=4)):
        body[name] = draw(FIELDS[name])
    if draw(st.booleans()):
        body.pop("redirect_uris")
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@pytest.fixture(scope="module")
def kit() -> FuzzKit:
    return build_kit()


@FUZZ
@given(body=registration_body(), content_type=st.one_of(st.just("application/json"), content_types))
def test_register_answers_a_public_client_or_an_rfc7591_error(kit: FuzzKit, body: bytes, content_type: str) -> None:
    kit.client.cookies.clear()
    with captured_logs(kit.public_url) as logs:
        response = kit.client.post("/oauth/register", content=body, headers=wire({"content-type": content_type}))
    event(f"status {response.status_code}")
    if response.status_code == 201:
        answer = response.json()
        asked = json.loads(body)
        assert answer["token_endpoint_auth_method"] == "none"
        assert "client_secret" not in answer
        assert answer["redirect_uris"] and set(answer["redirect_uris"]) <= set(asked["redirect_uris"])
        assert isinstance(answer["client_id"], str) and answer["client_id"]
    else:
        assert_json_error(response, REGISTRATION_ERRORS | {"invalid_request"})
    assert_nothing_leaks(response, logs, kit.secrets)


@FUZZ
@given(
    content_type=content_types.filter(lambda c: not _is_json_media_type(c)),
)
def test_register_refuses_a_body_not_declared_as_json(kit: FuzzKit, content_type: str) -> None:
    """RFC 7591 §3.1: the request is ``application/json``. A form or text body (what a
    cross-site HTML form can send without a CORS preflight) is not a registration."""
    body = json.dumps({"redirect_uris": [CLIENT_REDIRECT], "client_name": "Fuzzed"}).encode()
    response = kit.client.post("/oauth/register", content=body, headers=wire({"content-type": content_type}))
    assert response.status_code in (400, 415), response.text
    assert_json_error(response, REGISTRATION_ERRORS | {"invalid_request"})

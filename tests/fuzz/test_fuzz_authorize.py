"""``GET /oauth/authorize`` with arbitrary query strings, for each kind of client.

Properties: a consent page, an HTML error page, or (only where the operator or a person
approved the redirect URI) a redirect to exactly that URI with a registered error and the
shim's ``iss``; never a 5xx; nothing planted or secret echoed or logged.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .properties import (
    AUTHORIZATION_ERRORS,
    assert_html_error_page,
    assert_no_server_error,
    assert_nothing_leaks,
    assert_redirect_only_to,
    captured_logs,
)
from .setups import CIMD_CLIENT_ID, CIMD_REDIRECTS, CLIENT_REDIRECT, DocumentServer, FuzzKit, build_kit, pkce_pair, registered_client
from .strategies import FUZZ, hostile_text, hostile_urls, planted

_, CHALLENGE = pkce_pair()

# Parameters an authorization request may carry, and ones that must never matter.
KNOWN = [
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "resource",
    "scope",
    "response_mode",
    "request",
    "request_uri",
    "prompt",
    "login_hint",
    "ui_locales",
    "audience",
]
# Credentials that have no business in an authorization request; their echo would be a leak.
SECRET_PARAMS = ["code_verifier", "client_secret", "code", "access_token", "refresh_token"]


@pytest.fixture(scope="module", params=["signed", "static", "metadata_document"])
def client_kind(request: pytest.FixtureRequest) -> tuple[FuzzKit, str, tuple[str, ...]]:
    """A shim and a client_id of the given kind, with the redirect URIs that client registered."""
    if request.param == "signed":
        kit = build_kit()
        return kit, registered_client(kit), (CLIENT_REDIRECT,)
    if request.param == "static":
        kit = build_kit(registration="static")
        return kit, kit.idp.client_id, (CLIENT_REDIRECT,)
    kit = build_kit(documents=DocumentServer())
    return kit, CIMD_CLIENT_ID, CIMD_REDIRECTS


@st.composite
def authorization_query(draw: st.DrawFn, kit: FuzzKit, client_id: str) -> tuple[str, list[str]]:
    """A raw query string and the credentials planted in it.

    Mutational: a valid request with up to four parameters dropped, replaced by hostile values
    or added, so most examples get past the client and redirect URI checks and reach the later
    ones. Some values are left badly escaped (raw ``%``, ``+``, ``&``, ``=``).
    """
    params = kit.authorize_query(client_id, CHALLENGE)
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(KNOWN))
        action = draw(st.sampled_from(["drop", "replace", "replace"]))
        if action == "drop":
            params.pop(name, None)
        else:
            params[name] = draw(st.one_of(hostile_text, hostile_urls))
    pairs = list(params.items())
    secrets = draw(st.lists(st.tuples(st.sampled_from(SECRET_PARAMS), planted), max_size=2, unique_by=lambda p: p[0]))
    pairs += secrets
    pairs += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=2))
    if draw(st.integers(0, 9)) == 0 and pairs:
        pairs.append(draw(st.sampled_from(pairs)))  # a repeated parameter (RFC 6749 §3.1)
    pairs = draw(st.permutations(pairs))
    safe = "%+=&" if draw(st.integers(0, 4)) == 0 else ""
    query = "&".join(f"{quote(k, safe=safe)}={quote(v, safe=safe)}" for k, v in pairs)
    return query, [v for _, v in secrets]


@FUZZ
@given(data=st.data())
def test_authorize_answers_consent_an_error_page_or_a_redirect_to_the_registered_uri(
    client_kind: tuple[FuzzKit, str, tuple[str, ...]], data: st.DataObject
) -> None:
    kit, client_id, registered = client_kind
    query, secrets = data.draw(authorization_query(kit, client_id))
    kit.client.cookies.clear()
    with captured_logs(kit.public_url) as logs:
        response = kit.client.get("/oauth/authorize?" + query, follow_redirects=False)
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert_redirect_only_to(response, registered)
    if response.status_code in (302, 303):
        answer = parse_qs(urlsplit(response.headers["location"]).query)
        assert answer["error"][0] in AUTHORIZATION_ERRORS, answer
        assert answer["iss"] == [kit.shim.issuer], answer  # RFC 9207 §2: on errors too
    elif response.status_code == 200:
        assert response.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    else:
        assert_html_error_page(response)
    assert_nothing_leaks(response, logs, [*kit.secrets, *secrets])


@pytest.fixture(scope="module")
def self_registered() -> tuple[FuzzKit, str]:
    kit = build_kit()
    return kit, registered_client(kit, ["https://attacker.example/cb", CLIENT_REDIRECT])


@FUZZ
@given(data=st.data())
def test_authorize_never_redirects_for_a_self_registered_client(self_registered: tuple[FuzzKit, str], data: st.DataObject) -> None:
    """Before consent nobody approved a self-registered client's redirect URI, so an error is a
    page, never a redirect to it (RFC 9700 §4.11.2: the authorization endpoint is no open
    redirector)."""
    kit, client_id = self_registered
    query, _ = data.draw(authorization_query(kit, client_id))
    kit.client.cookies.clear()
    response = kit.client.get("/oauth/authorize?" + query, follow_redirects=False)
    assert_no_server_error(response)
    assert "location" not in response.headers, response.headers["location"]
    if response.status_code != 200:
        assert_html_error_page(response)

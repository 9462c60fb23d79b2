"""``GET /oauth/callback`` with arbitrary query strings (state, code, error, iss) and cookies
(the ``__Host-`` flow-binding cookie included).

Properties: an HTML error page or a redirect to the client's registered URI; the code is
relayed only with the state the shim signed, in the browser holding the binding cookie; never a
5xx; the IdP's code never appears as it is, no secret or signed state in answers or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from .setups import CLIENT_REDIRECT, HTTPS_PUBLIC_URL, IDP_ISSUER, FuzzKit, build_kit, pkce_pair, registered_client
from .strategies import FUZZ, header_values, hostile_text, hostile_urls, planted, wire


@dataclass
class CallbackTarget:
    kit: FuzzKit
    answer: dict[str, str]
    flow_cookie: tuple[str, str]
    consent_ticket: str


@pytest.fixture(scope="module")
def target() -> CallbackTarget:
    kit = build_kit(public_url=HTTPS_PUBLIC_URL)
    query = kit.authorize_query(registered_client(kit), pkce_pair()[1])
    idp_url, cookies = kit.approved(query)
    (name, value), = [(k, v) for k, v in cookies.items() if k.startswith("__Host-mcp-shim-flow-")]
    fields, _ = kit.consent_page(query)
    return CallbackTarget(kit, kit.callback_query(idp_url), (name, value), fields["ticket"])


def _tampered(value: str) -> st.SearchStrategy[str]:
    return st.integers(0, len(value) - 1).map(lambda i: value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :])


@dataclass
class CallbackRequest:
    url: str
    headers: dict[str, str]
    planted: list[str]
    state_ok: bool
    cookie_ok: bool


@st.composite
def callback_request(draw: st.DrawFn, t: CallbackTarget) -> CallbackRequest:
    """The IdP's answer with up to three parts spoiled (state, cookie, iss) or replaced (code,
    error), so that both sides of every check are reached often."""
    spoil = draw(st.sets(st.sampled_from(["state", "cookie", "iss"]), max_size=3))
    state: str | None = t.answer["state"]
    if "state" in spoil:
        state = draw(st.one_of(_tampered(t.answer["state"]), st.just(t.consent_ticket), hostile_text, st.none()))
    code = draw(st.one_of(planted, planted, hostile_text, st.just("x" * 5000), st.none()))
    error = draw(st.one_of(st.none(), st.none(), st.sampled_from(sorted(AUTHORIZATION_ERRORS)), hostile_text))
    iss = draw(st.one_of(hostile_urls, st.none())) if "iss" in spoil else IDP_ISSUER
    params = {"state": state, "code": code, "error": error, "iss": iss, "error_description": draw(st.one_of(st.none(), hostile_text))}
    pairs = [(k, v) for k, v in params.items() if v is not None]
    pairs += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=2))
    if draw(st.integers(0, 9)) == 0 and pairs:
        pairs.append(draw(st.sampled_from(pairs)))
    pairs = draw(st.permutations(pairs))
    safe = "%+=&" if draw(st.integers(0, 4)) == 0 else ""
    url = "/oauth/callback?" + "&".join(f"{quote(k, safe=safe)}={quote(v, safe=safe)}" for k, v in pairs)
    name, value = t.flow_cookie
    cookie_kind = draw(st.sampled_from(["no-prefix", "other", "hostile", "none"])) if "cookie" in spoil else "right"
    cookie = {
        "right": f"{name}={value}",
        "no-prefix": f"{name.removeprefix('__Host-')}={value}",
        "other": f"{name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "hostile": f"{name}={draw(header_values)}",
        "none": None,
    }[cookie_kind]
    return CallbackRequest(
        url,
        {"cookie": cookie} if cookie else {},
        [code] if code and code.startswith("PLANTED") else [],
        state_ok=state == t.answer["state"],
        cookie_ok=cookie_kind == "right",
    )


def _get(kit: FuzzKit, request: CallbackRequest):  # type: ignore[no-untyped-def]
    kit.client.cookies.clear()
    return kit.client.get(request.url, headers=wire(request.headers), follow_redirects=False)


@FUZZ
@given(data=st.data())
def test_callback_answers_an_error_page_or_relays_to_the_registered_uri(target: CallbackTarget, data: st.DataObject) -> None:
    request = data.draw(callback_request(target))
    with captured_logs(target.kit.public_url) as logs:
        response = _get(target.kit, request)
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert_redirect_only_to(response, [CLIENT_REDIRECT])
    if "location" in response.headers:
        answer = parse_qs(urlsplit(response.headers["location"]).query)
        assert answer["iss"] == [target.kit.shim.issuer]
        assert answer["state"] == ["client-state"]
        assert "error" in answer or "code" in answer
        if "error" in answer:
            assert answer["error"][0] in AUTHORIZATION_ERRORS
    else:
        assert_html_error_page(response)
    assert_nothing_leaks(response, logs, [*target.kit.secrets, *request.planted, target.answer["state"]])


@FUZZ
@given(data=st.data())
def test_callback_relays_only_a_signed_state_in_the_browser_that_approved(target: CallbackTarget, data: st.DataObject) -> None:
    request = data.draw(callback_request(target))
    response = _get(target.kit, request)
    if "location" in response.headers:
        assert request.state_ok and request.cookie_ok, request

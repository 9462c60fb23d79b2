"""``POST /oauth/consent`` with arbitrary forms, cookies (the ``__Host-`` CSRF cookie included),
``Origin`` and ``Content-Type`` headers.

Properties: an HTML error page, a 303 to the IdP's authorization endpoint, or (decision deny)
a redirect to the client's registered URI; the IdP is reached only with the ticket this
browser was shown, its CSRF cookie and a same-origin post (confused-deputy and CSRF rules);
never a 5xx; no secret and no signed value in the answer or the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from .properties import assert_html_error_page, assert_no_server_error, assert_nothing_leaks, assert_redirect_only_to, captured_logs
from .setups import CLIENT_REDIRECT, HTTPS_PUBLIC_URL, FuzzKit, build_kit, pkce_pair, registered_client
from .strategies import FORM, FUZZ, content_types, header_values, hostile_text, wire

CSRF = "__Host-mcp-shim-csrf"


@dataclass
class ConsentTarget:
    kit: FuzzKit
    ticket: str
    csrf: str
    other_ticket: str


@pytest.fixture(scope="module")
def target() -> ConsentTarget:
    kit = build_kit(public_url=HTTPS_PUBLIC_URL)
    query = kit.authorize_query(registered_client(kit), pkce_pair()[1])
    fields, cookies = kit.consent_page(query)
    other, _ = kit.consent_page(query)  # a ticket shown to another browser (another CSRF value)
    return ConsentTarget(kit, fields["ticket"], cookies[CSRF], other["ticket"])


def _tampered(value: str) -> st.SearchStrategy[str]:
    return st.integers(0, len(value) - 1).map(lambda i: value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :])


@dataclass
class ConsentPost:
    body: bytes
    headers: dict[str, str]
    ticket_ok: bool
    cookie_ok: bool
    origin_ok: bool
    form_ok: bool
    decision: str | None


@st.composite
def consent_post(draw: st.DrawFn, t: ConsentTarget) -> ConsentPost:
    """The right post with up to three of its parts spoiled, so that both sides of every check
    are reached often."""
    spoil = draw(st.sets(st.sampled_from(["ticket", "decision", "cookie", "origin", "content_type"]), max_size=3))
    ticket = t.ticket
    if "ticket" in spoil:
        ticket = draw(st.one_of(st.just(t.other_ticket), _tampered(t.ticket), hostile_text, st.none()))
    decision = draw(st.sampled_from(["approve", "deny"]))
    if "decision" in spoil:
        decision = draw(st.one_of(hostile_text, st.none()))
    fields = {"ticket": ticket, "decision": decision}
    pairs = [(k, v) for k, v in fields.items() if v is not None]
    pairs += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=2))
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()
    cookie_kind = draw(st.sampled_from(["no-prefix", "other", "hostile", "none"])) if "cookie" in spoil else "right"
    cookie = {
        "right": f"{CSRF}={t.csrf}",
        "no-prefix": f"mcp-shim-csrf={t.csrf}",
        "other": f"{CSRF}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "hostile": f"{CSRF}={draw(header_values)}",
        "none": None,
    }[cookie_kind]
    origin = draw(st.one_of(st.none(), st.just(HTTPS_PUBLIC_URL)))
    if "origin" in spoil:
        origin = draw(st.one_of(st.sampled_from(["null", "http://mcp.example.com", "https://evil.example"]), header_values))
    content_type = draw(content_types) if "content_type" in spoil else FORM
    headers = {"content-type": content_type}
    if cookie is not None:
        headers["cookie"] = cookie
    if origin is not None:
        headers["origin"] = origin
    return ConsentPost(
        body,
        headers,
        ticket_ok=ticket == t.ticket,
        cookie_ok=cookie_kind == "right",
        origin_ok=origin in (None, HTTPS_PUBLIC_URL),
        form_ok=content_type.split(";")[0].strip() == FORM,
        decision=decision,
    )


def _post(kit: FuzzKit, post: ConsentPost):  # type: ignore[no-untyped-def]
    kit.client.cookies.clear()
    return kit.client.post("/oauth/consent", content=post.body, headers=wire(post.headers), follow_redirects=False)


@FUZZ
@given(data=st.data())
def test_consent_answers_an_error_page_or_a_redirect_to_the_idp_or_the_client(target: ConsentTarget, data: st.DataObject) -> None:
    post = data.draw(consent_post(target))
    with captured_logs(target.kit.public_url) as logs:
        response = _post(target.kit, post)
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    assert_redirect_only_to(response, [CLIENT_REDIRECT], target.kit.idp_authorize)
    if "location" not in response.headers:
        assert_html_error_page(response)
    assert_nothing_leaks(response, logs, [*target.kit.secrets, target.ticket])


@FUZZ
@given(data=st.data())
def test_consent_reaches_the_idp_only_from_the_browser_that_was_shown_the_form(target: ConsentTarget, data: st.DataObject) -> None:
    post = data.draw(consent_post(target))
    response = _post(target.kit, post)
    if "location" in response.headers:
        assert post.ticket_ok and post.cookie_ok and post.origin_ok and post.form_ok, post
        assert post.decision in ("approve", "deny")
        to_idp = response.headers["location"].startswith(target.kit.idp_authorize + "?")
        assert to_idp == (post.decision == "approve"), response.headers["location"]

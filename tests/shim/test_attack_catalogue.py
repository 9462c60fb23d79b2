"""Attacks from the pre-release security review, run against live in-process instances.

Each test passes when the code resists the attack (DESIGN.md §6 invariants, the RFCs cited);
a failing test is a finding. The attacks that already fail are kept as regression tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.cimd import ClientMetadataDocuments
from mcp_oauth_shim.sealing import REFRESH, STATE, digest

from .kit import (
    CLIENT_REDIRECT,
    IDP_ISSUER,
    PUBLIC_URL,
    RESOURCE,
    Kit,
    make_kit,
    pkce_pair,
    sealed_at,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _lenient(app: Any) -> TestClient:
    """A client that reports a crash as the 500 a real server would send."""
    return TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False)


def _idp_url(kit: Kit, **overrides: Any) -> tuple[str, str, str]:
    """Register, authorize, approve: (client_id, verifier, the IdP URL the shim redirects to)."""
    client_id = kit.register()["client_id"]
    verifier, challenge = pkce_pair()
    consent = kit.approve(kit.authorize_params(client_id, challenge, **overrides))
    assert consent.status_code == 303, consent.text
    return client_id, verifier, consent.headers["location"]


# -- §6.8: malformed input is an RFC-shaped 4xx, never a 500 ----------------------------------

DEEP_ARRAY = (
    b"[" * 40_000
)  # 40 KB: under every body limit, far over Python's recursion limit


def test_registration_with_deeply_nested_json_is_refused_not_a_500() -> None:
    kit = make_kit()
    response = _lenient(kit.shim.app).post(
        "/oauth/register",
        content=DEEP_ARRAY,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


def test_client_metadata_document_with_deep_nesting_is_refused_not_a_500() -> None:
    # Anyone can publish such a document and name its URL as client_id (CIMD, draft §4).
    client_id = "https://client.example.com/meta.json"

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": "application/json"}, content=b"[" * 4000
        )

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    documents = ClientMetadataDocuments(
        http=httpx.AsyncClient(transport=httpx.MockTransport(serve)), resolver=resolve
    )
    kit = make_kit(client_metadata_documents=documents)
    response = _lenient(kit.shim.app).get(
        "/oauth/authorize",
        params=kit.authorize_params(client_id, pkce_pair()[1]),
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers


CIMD_SSRF = [
    ("https://internal.example.com/c.json", ["10.0.0.1"]),
    ("https://metadata.example.com/c.json", ["93.184.216.34", "169.254.169.254"]),
    ("https://v6.example.com/c.json", ["::ffff:127.0.0.1"]),
    ("https://nat64.example.com/c.json", ["64:ff9b::a9fe:a9fe"]),
    ("https://cgnat.example.com/c.json", ["100.64.0.1"]),
    ("https://127.0.0.1/c.json", []),
    ("https://2130706433/c.json", []),
    ("https://0x7f.1/c.json", []),
    ("https://[::1]/c.json", []),
    ("https://[fe80::1%25eth0]/c.json", []),
    ("https://localhost./c.json", ["127.0.0.1"]),
    ("http://client.example.com/c.json", ["93.184.216.34"]),
    ("https://client.example.com/a/../c.json", ["93.184.216.34"]),
    ("https://user@client.example.com/c.json", ["93.184.216.34"]),
]


def test_client_metadata_documents_are_never_fetched_from_special_use_addresses() -> (
    None
):
    fetched: list[str] = []
    answers: dict[str, list[str]] = {
        urlsplit(url).hostname or "": ips for url, ips in CIMD_SSRF
    }

    def serve(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(404)

    async def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, ["127.0.0.1"])

    documents = ClientMetadataDocuments(
        http=httpx.AsyncClient(transport=httpx.MockTransport(serve)), resolver=resolve
    )
    kit = make_kit(client_metadata_documents=documents)
    offenders = []
    for client_id, _ips in CIMD_SSRF:
        response = kit.client.get(
            "/oauth/authorize",
            params=kit.authorize_params(client_id, pkce_pair()[1]),
            follow_redirects=False,
        )
        if response.status_code != 400 or "location" in response.headers:
            offenders.append((client_id, response.status_code))
    assert offenders == []
    assert fetched == []


def _shim_with_idp_answering(endpoint: str, body: bytes) -> OAuthShim:
    """A shim whose IdP answers ``body`` at ``endpoint`` (discovery, token or jwks)."""
    issuer = "http://127.0.0.1:9999"
    meta = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/a",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks",
    }

    def idp(request: httpx.Request) -> httpx.Response:
        name = (
            "discovery"
            if "well-known" in request.url.path
            else request.url.path.strip("/")
        )
        if name != endpoint:
            return httpx.Response(200, json=meta)
        return httpx.Response(
            400 if name == "token" and b"access_token" not in body else 200,
            headers={"Content-Type": "application/json"},
            content=body,
        )

    return OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=Upstream.oidc(issuer=issuer, client_id="shim", client_secret="s" * 32),
        secret_keys=["k" * 48],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(idp)),
    )


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("token", DEEP_ARRAY),
        ("discovery", DEEP_ARRAY),
        ("token", b"<html>oops</html>"),
        (
            "token",
            b'{"access_token": "at", "token_type": "Bearer", "scope": "openid \\ud800"}',
        ),
    ],
    ids=["token-deep", "discovery-deep", "token-html", "token-surrogate"],
)
def test_garbage_from_the_idp_is_a_502_not_a_500(endpoint: str, body: bytes) -> None:
    shim = _shim_with_idp_answering(endpoint, body)
    client = _lenient(shim.app)
    client_id = client.post(
        "/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}
    ).json()["client_id"]
    refresh = shim.context.sealer.seal(
        REFRESH, {"u": "upstream-rt", "c": digest(client_id), "sc": "openid"}
    )
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": client_id,
        },
    )
    assert response.status_code in (200, 400, 502)
    assert response.status_code == 200 or "error" in response.json()


def test_a_garbage_key_set_is_a_502_at_the_protected_endpoint_not_a_500() -> None:
    from starlette.responses import PlainTextResponse

    kit = make_kit()
    shim = _shim_with_idp_answering("jwks", DEEP_ARRAY)
    app = shim.protect(PlainTextResponse("secret"))
    token = _sign(kit, _claims(iss="http://127.0.0.1:9999"))
    response = _lenient(app).get("/mcp", headers={"Authorization": "Bearer " + token})
    assert response.status_code == 502


FUZZ_REQUESTS = [
    (
        "POST",
        "/oauth/register",
        {"content": b"\x00\xff" * 100, "headers": {"Content-Type": "application/json"}},
    ),
    (
        "POST",
        "/oauth/register",
        {
            "content": b'{"redirect_uris": "x"}',
            "headers": {"Content-Type": "text/plain"},
        },
    ),
    (
        "POST",
        "/oauth/register",
        {"json": {"redirect_uris": [CLIENT_REDIRECT], "client_name": ["x"]}},
    ),
    (
        "POST",
        "/oauth/register",
        {"json": {"redirect_uris": [CLIENT_REDIRECT], "application_type": {"a": 1}}},
    ),
    ("POST", "/oauth/register", {"json": {"redirect_uris": [["x"]]}}),
    (
        "POST",
        "/oauth/register",
        {
            "content": b'{"a": ' + b"1" * 5000 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "POST",
        "/oauth/register",
        {
            "content": b'{"redirect_uris": ["http://127.0.0.1:53682/callback"], "client_name": "x\\ud800"}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "POST",
        "/oauth/register",
        {
            "content": b'{"redirect_uris": ["http://127.0.0.1:53682/callback"], "scope": "\\udfff"}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    ("POST", "/oauth/token", {"content": b"\xff\xfe=1", "headers": FORM}),
    (
        "POST",
        "/oauth/token",
        {
            "content": b"grant_type=authorization_code",
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "POST",
        "/oauth/token",
        {"content": b"x", "headers": {**FORM, "Content-Length": "-5"}},
    ),
    (
        "POST",
        "/oauth/token",
        {
            "data": {
                "grant_type": "refresh_token",
                "refresh_token": "a.b.c",
                "client_id": "x" * 9000,
            }
        },
    ),
    (
        "POST",
        "/oauth/token",
        {
            "data": {"grant_type": "authorization_code", "client_id": "c"},
            "headers": {"Authorization": b"Basic \xe9"},
        },
    ),
    (
        "POST",
        "/oauth/token",
        {
            "data": {"grant_type": "authorization_code"},
            "headers": {"Authorization": "Basic " + "A" * 3},
        },
    ),
    ("POST", "/oauth/revoke", {"data": {"token": "x" * 70_000}}),
    ("POST", "/oauth/revoke", {"content": b"token=%ff%fe", "headers": FORM}),
    ("POST", "/oauth/consent", {"content": b"\xff" * 50, "headers": FORM}),
    ("POST", "/oauth/consent", {"data": {"ticket": "a" * 9000, "decision": "approve"}}),
    ("GET", "/oauth/callback", {"params": {"state": "x" * 20_000, "code": "c"}}),
    (
        "GET",
        "/oauth/callback",
        {"params": {"state": "\u00e9\u202e", "error": "access_denied"}},
    ),
    (
        "GET",
        "/oauth/authorize",
        {"params": {"client_id": "https://[::1%25eth0]/x", "response_type": "code"}},
    ),
    (
        "GET",
        "/oauth/authorize",
        {
            "params": {
                "client_id": "http://169.254.169.254/latest/meta-data",
                "response_type": "code",
            }
        },
    ),
    ("GET", "/oauth/authorize", {"params": {"client_id": "\x00" * 10}}),
    ("GET", "/oauth/token", {}),
    ("PUT", "/oauth/register", {}),
    ("DELETE", "/oauth/consent", {}),
]


def test_malformed_requests_get_a_client_error_never_a_500() -> None:
    client = _lenient(make_kit().shim.app)
    offenders = []
    for method, path, kwargs in FUZZ_REQUESTS:
        response = client.request(method, path, follow_redirects=False, **kwargs)
        if not 400 <= response.status_code < 500 or "location" in response.headers:
            offenders.append((method, path, str(kwargs)[:80], response.status_code))
    assert offenders == []


# -- §6.2: nothing is redirected to a URI the client did not register ------------------------

REGISTERED = [
    "http://127.0.0.1:53682/callback",
    "https://app.example.com/cb",
    "com.example.app:/oauth",
]

UNREGISTERED_REDIRECTS = [
    "https://evil.example/cb",
    "https://app.example.com.evil.example/cb",
    "https://app.example.com/cb/../evil",
    "https://app.example.com/cb?x=1",
    "https://app.example.com/CB",
    "https://APP.example.com/cb",
    "https://app.example.com./cb",
    "https://app.example.com:443/cb",
    "https://app.example.com/cb#frag",
    "https://app.example.com/cb%2f..%2fevil",
    "https://user@app.example.com/cb",
    "https://app.example.com\\@evil.example/cb",
    "https://app.example.com/cb;x=1",
    "https://xn--pp-8ba.example.com/cb",
    "http://app.example.com/cb",
    "http://127.0.0.1:53682/callback/../x",
    "http://127.0.0.1:53682@evil.example/callback",
    "http://127.1:53682/callback",
    "http://0x7f000001:53682/callback",
    "http://2130706433/callback",
    "http://localhost:53682/callback",
    "http://localhost.:53682/callback",
    "http://[::1]:53682/callback",
    "http://[::ffff:127.0.0.1]:53682/callback",
    "http://127.0.0.1:53682/Callback",
    "http://127.0.0.1:5368200000/callback",
    "http://127.0.0.1%2eevil.example/callback",
    "com.example.app:/oauth/../x",
    "com.example.app://oauth",
    "javascript:alert(1)//com.example.app:/oauth",
    " https://app.example.com/cb",
]


def test_an_unregistered_redirect_uri_is_never_redirected_to() -> None:
    # response_type=token makes every accepted redirect_uri visible as an error redirect.
    kit = make_kit()
    client_id = kit.register(redirect_uris=REGISTERED)["client_id"]
    offenders = []
    for redirect_uri in UNREGISTERED_REDIRECTS:
        params = kit.authorize_params(
            client_id, pkce_pair()[1], redirect_uri=redirect_uri, response_type="token"
        )
        response = kit.client.get(
            "/oauth/authorize", params=params, follow_redirects=False
        )
        if response.status_code != 400 or "location" in response.headers:
            offenders.append((redirect_uri, response.status_code))
    assert offenders == []


DANGEROUS_REGISTRATIONS = [
    "javascript:alert(1)",
    "data:text/html,x",
    "file:///etc/passwd",
    "http://evil.example/cb",
    "http://127.0.0.1.nip.io/cb",
    "http://localhost.evil.example/cb",
    "https://a.example/cb#x",
    "https://u:p@a.example/cb",
    "HTTPS://a.example/cb",
    "https://a.example/%2e%2e/cb",
    "https:///cb",
    "https://a.example/c b",
    "https://a.example/cb\r\nX-Injected: 1",
    "evil:/cb",
    "//evil.example/cb",
]


def test_dangerous_redirect_uris_cannot_be_registered() -> None:
    client = make_kit().client
    offenders = []
    for redirect_uri in DANGEROUS_REGISTRATIONS:
        response = client.post(
            "/oauth/register", json={"redirect_uris": [redirect_uri]}
        )
        if (
            response.status_code != 400
            or response.json().get("error") != "invalid_redirect_uri"
        ):
            offenders.append((redirect_uri, response.status_code))
    assert offenders == []


def test_a_client_the_registration_endpoint_accepts_can_complete_a_login() -> None:
    # 20 redirect URIs (the documented maximum) of modest length, a 200-character name and a
    # 1024-character state are all within the advertised limits.
    kit = make_kit()
    uris = [CLIENT_REDIRECT] + [
        f"https://app.example.com/{'p' * 150}{i}" for i in range(19)
    ]
    registered = kit.client.post(
        "/oauth/register", json={"redirect_uris": uris, "client_name": "n" * 200}
    )
    if registered.status_code == 400:
        return  # refusing at registration is a fine answer too
    login = kit.login(registered.json()["client_id"], state="s" * 1024)
    assert login["state"] == "s" * 1024


def test_loopback_redirect_may_change_only_its_port() -> None:
    kit = make_kit()
    login = kit.login(redirect_uri="http://127.0.0.1:1/callback")
    assert login["location"].startswith("http://127.0.0.1:1/callback?")


# -- §6.3/§6.4: consent first; callbacks only in the approving browser, once, signed ----------


def _fresh_browser(kit: Kit) -> TestClient:
    return TestClient(kit.shim.app, base_url=PUBLIC_URL)


def test_idp_url_from_an_attackers_consent_is_refused_in_the_victims_browser() -> None:
    # Consent bypass: the attacker approves his own client, then has the victim open the IdP URL.
    kit = make_kit()
    _client_id, _verifier, idp_url = _idp_url(kit)
    callback = kit.idp_round_trip(idp_url)
    parts = urlsplit(callback)
    victim = _fresh_browser(kit)
    response = victim.get(parts.path + "?" + parts.query, follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers


def test_two_concurrent_logins_cannot_swap_their_states() -> None:
    kit = make_kit()
    _a, _va, idp_a = _idp_url(kit)
    _b, _vb, idp_b = _idp_url(kit)
    callback_a, callback_b = kit.idp_round_trip(idp_a), kit.idp_round_trip(idp_b)
    # Same browser (both flow cookies present), but the code of one flow with the state of the other.
    code_a, state_b = _query(callback_a)["code"], _query(callback_b)["state"]
    swapped = kit.client.get(
        "/oauth/callback",
        params={"code": code_a, "state": state_b, "iss": IDP_ISSUER},
        follow_redirects=False,
    )
    assert (
        swapped.status_code == 302
    )  # the state is what binds; the IdP code is checked at /token
    relayed = _query(swapped.headers["location"])
    # ...and that code, relayed under flow B's client, is refused by the IdP's PKCE check.
    token = kit.token(
        grant_type="authorization_code",
        code=relayed["code"],
        redirect_uri=CLIENT_REDIRECT,
        code_verifier=_vb,
        client_id=_b,
    )
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_grant"


def test_a_callback_is_honoured_only_once() -> None:
    kit = make_kit()
    _c, _v, idp_url = _idp_url(kit)
    callback = kit.idp_round_trip(idp_url)
    assert kit.callback(callback).status_code == 302
    assert kit.callback(callback).status_code == 403


def test_an_expired_state_is_refused() -> None:
    kit = make_kit()
    _c, _v, idp_url = _idp_url(kit)
    state = _query(idp_url)["state"]
    value = kit.shim.context.sealer.unseal(STATE, state, max_age=600)
    stale = sealed_at(STATE, value, int(time.time()) - 660)  # 11 minutes ago, same key
    response = kit.client.get(
        "/oauth/callback",
        params={"state": stale, "code": "c", "iss": IDP_ISSUER},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize("iss", ["http://127.0.0.1:9001", "http://127.0.0.1:9000/"])
def test_an_answer_from_another_issuer_is_refused(iss: str) -> None:
    kit = make_kit()
    _c, _v, idp_url = _idp_url(kit)
    callback = kit.idp_round_trip(idp_url)
    query = {**_query(callback), "iss": iss}
    response = kit.client.get("/oauth/callback", params=query, follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("headers", "cookies_kept", "status"),
    [
        ({"Origin": "https://evil.example"}, True, 403),
        ({"Origin": "http://127.0.0.1:8000.evil.example"}, True, 403),
        ({}, False, 403),
        ({"Content-Type": "text/plain"}, True, 400),
    ],
)
def test_consent_post_csrf_defences(
    headers: dict[str, str], cookies_kept: bool, status: int
) -> None:
    kit = make_kit()
    form = kit.consent_form(
        kit.authorize_params(kit.register()["client_id"], pkce_pair()[1])
    )
    browser = kit.client if cookies_kept else _fresh_browser(kit)
    body = "&".join(f"{k}={v}" for k, v in {**form, "decision": "approve"}.items())
    response = browser.post(
        "/oauth/consent",
        content=body,
        headers={**FORM, **headers},
        follow_redirects=False,
    )
    assert response.status_code == status
    assert "location" not in response.headers


def test_consent_page_is_unframeable_uncacheable_and_escapes_the_client() -> None:
    kit = make_kit()
    # No bidi override here: registration refuses those (test_authorization_server_attacks.py).
    name = "<img src=x onerror=alert(1)>\"'&"
    client_id = kit.register(client_name=name)["client_id"]
    page = kit.client.get(
        "/oauth/authorize", params=kit.authorize_params(client_id, pkce_pair()[1])
    )
    assert page.status_code == 200
    assert "<img" not in page.text and "onerror=alert(1)>" not in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"


# -- header and parameter injection -----------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["a\r\nSet-Cookie: pwned=1&code=forged", "\u2028\u0085%0d%0a"]
)
def test_client_state_cannot_inject_headers_into_the_relay(state: str) -> None:
    kit = make_kit()
    login = kit.login(state=state)
    assert login["state"] == state
    response_location = login["location"]
    assert "\r" not in response_location and "\n" not in response_location
    assert set(_query(response_location)) == {"code", "state", "iss"}


@pytest.mark.parametrize(
    "extra",
    [
        {
            "audience": "https://other.example",
            "nonce": "attacker",
            "claims": '{"id_token":{"email":null}}',
        },
        {"resource": PUBLIC_URL},
        {"request_uri": "https://evil.example/r"},
        {"response_mode": "form_post"},
        {
            "login_hint": "a&redirect_uri=https://evil.example/cb",
            "prompt": "none&client_id=evil",
        },
    ],
)
def test_client_parameters_never_reach_the_idp(extra: dict[str, str]) -> None:
    kit = make_kit()
    params = kit.authorize_params(kit.register()["client_id"], pkce_pair()[1], **extra)
    page = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    if page.status_code == 400:  # refused outright, shown to the person (no approved URI yet)
        assert "location" not in page.headers and 'name="ticket"' not in page.text
        return
    response = kit.approve(params)
    upstream = parse_qs(urlsplit(response.headers["location"]).query)
    assert all(len(values) == 1 for values in upstream.values())
    assert upstream["client_id"] == [kit.idp.client_id]
    assert upstream["redirect_uri"] == [PUBLIC_URL + "/oauth/callback"]
    assert upstream["resource"] == [RESOURCE]
    for name in (
        "audience",
        "request_uri",
        "response_mode",
        "redirect_uri_upstream",
        "claims",
        "nonce",
    ):
        assert name not in upstream


# -- §6.5: the token endpoint ----------------------------------------------------------------


def _token_case(kit: Kit, login: dict[str, Any], case: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": login["code"],
        "redirect_uri": CLIENT_REDIRECT,
        "code_verifier": login["verifier"],
        "client_id": login["client_id"],
    }
    if case == "other_client":
        form["client_id"] = kit.register(client_name="Another client")["client_id"]
    elif case == "other_redirect":
        form["redirect_uri"] = "http://127.0.0.1:53683/callback"
    elif case == "no_redirect":
        del form["redirect_uri"]
    elif case == "wrong_verifier":
        form["code_verifier"] = pkce_pair()[0]
    elif case == "no_verifier":
        del form["code_verifier"]
    elif case == "challenge_as_verifier":
        form["code_verifier"] = pkce_pair()[1]
    elif case == "code_as_refresh":
        form = {
            "grant_type": "refresh_token",
            "refresh_token": login["code"],
            "client_id": login["client_id"],
        }
    elif case == "client_id_as_code":
        form["code"] = login["client_id"]
    return form


@pytest.mark.parametrize(
    "case",
    [
        "other_client",
        "other_redirect",
        "no_redirect",
        "wrong_verifier",
        "code_as_refresh",
        "client_id_as_code",
    ],
)
def test_a_code_is_redeemed_only_by_its_client_redirect_and_verifier(case: str) -> None:
    kit = make_kit()
    login = kit.login()
    response = kit.token(**_token_case(kit, login, case))
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_grant", "invalid_request")
    assert (
        kit.exchange(login).status_code == 200
    )  # the refused attempt did not burn the code


def test_a_code_is_redeemed_only_once() -> None:
    kit = make_kit()
    login = kit.login()
    assert kit.exchange(login).status_code == 200
    replay = kit.exchange(login)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("case", ["other_client", "wider_scope", "old_after_rotation"])
def test_refresh_tokens_stay_with_their_client_and_grant(case: str) -> None:
    kit = make_kit()
    login = kit.login()
    tokens = kit.exchange(login).json()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": login["client_id"],
    }
    if case == "other_client":
        form["client_id"] = kit.register(client_name="Another client")["client_id"]
    elif case == "wider_scope":
        form["scope"] = "openid profile email admin"
    else:
        assert kit.token(**form).status_code == 200
    response = kit.token(**form)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_grant", "invalid_scope")


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "AUTHORIZATION_CODE",
    ],
)
def test_other_grants_are_refused_locally(grant_type: str) -> None:
    kit = make_kit()
    client_id = kit.register()["client_id"]
    response = kit.token(
        grant_type=grant_type,
        client_id=client_id,
        username="demo",
        password="demo",
        subject_token="x",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "override",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge": "short"},
    ],
)
def test_pkce_cannot_be_downgraded(override: dict[str, Any]) -> None:
    kit = make_kit()
    client_id = kit.register()["client_id"]
    params = kit.authorize_params(client_id, pkce_pair()[1], **override)
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "<code>invalid_request</code>" in response.text
    assert 'name="ticket"' not in response.text  # no consent form, so no way on to the IdP


# -- §6.1: no secrets in responses or logs ----------------------------------------------------


def test_a_full_flow_leaks_no_secret_in_responses_or_shim_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = make_kit()
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        response.read()
        seen.append(str(response.headers) + response.text)

    kit.client.event_hooks["response"].append(record)
    with caplog.at_level(logging.DEBUG):
        login = kit.login()
        tokens = kit.exchange(login).json()
        kit.token(
            grant_type="refresh_token",
            refresh_token=tokens["refresh_token"],
            client_id=login["client_id"],
        )
        kit.client.post(
            "/oauth/revoke",
            data={"token": tokens["refresh_token"], "client_id": login["client_id"]},
        )
    assert not any(kit.idp.client_secret in text for text in seen)
    shim_logs = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("mcp_oauth_shim") and ".dev_idp" not in r.name
    )
    upstream_code = _query(kit.idp_round_trip(_idp_url(kit)[2]))["code"]
    for secret in (
        login["code"],
        login["verifier"],
        tokens["access_token"],
        tokens["refresh_token"],
        kit.idp.client_secret,
        upstream_code,
    ):
        assert secret not in shim_logs
        assert secret[:24] not in shim_logs


# -- §6.7: the verifier refuses tokens that are not ours ---------------------------------------


def _sign(kit: Kit, claims: dict[str, Any], **header: Any) -> str:
    key = kit.idp.server.keys.keys[0]
    return jwt.encode(
        {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **header}, claims, key
    )


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": IDP_ISSUER,
        "aud": RESOURCE,
        "sub": "u",
        "exp": now + 300,
        "iat": now,
        "scope": "openid",
        **overrides,
    }


BAD_CLAIMS = [
    {"iss": PUBLIC_URL},
    {"aud": ["https://other.example/mcp", RESOURCE + "/"]},
    {"aud": PUBLIC_URL},
    {"exp": str(int(time.time()) + 300)},
    {"exp": None},
    {"nbf": int(time.time()) + 3600},
]


@pytest.mark.parametrize("overrides", BAD_CLAIMS)
def test_tokens_for_another_issuer_audience_or_time_are_refused(
    overrides: dict[str, Any],
) -> None:
    kit = make_kit()
    claims = {k: v for k, v in _claims(**overrides).items() if v is not None}
    assert asyncio.run(kit.shim.verifier.verify_token(_sign(kit, claims))) is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign_raw(key: RSAKey, header: dict[str, Any], payload: bytes) -> str:
    """A JWS built by hand, so that headers joserfc would refuse to write can be sent."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(payload)
    signature = key.private_key.sign(
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return signing_input + "." + _b64(signature)


@pytest.mark.parametrize(
    ("header", "signer"),
    [
        ({"crit": ["urn:example:unknown"], "urn:example:unknown": 1}, "idp"),
        ({"crit": ["b64"], "b64": False}, "idp"),
        ({"jku": "https://evil.example/jwks", "kid": "attacker"}, "stranger"),
        ({"jwk": "EMBEDDED"}, "stranger"),
    ],
)
def test_jws_header_tricks_are_refused(header: dict[str, Any], signer: str) -> None:
    kit = make_kit()
    idp_key = kit.idp.server.keys.keys[0]
    key = idp_key if signer == "idp" else RSAKey.generate_key(2048)
    header = {"alg": "RS256", "kid": idp_key.kid, **header}
    if header.get("jwk") == "EMBEDDED":
        header["jwk"] = key.as_dict(private=False)
    token = _sign_raw(key, header, json.dumps(_claims()).encode())
    assert asyncio.run(kit.shim.verifier.verify_token(token)) is None


def test_a_genuine_token_is_accepted_however_it_was_signed() -> None:
    # The control for the refusals above: both signing helpers make tokens the verifier takes.
    kit = make_kit()
    key = kit.idp.server.keys.keys[0]
    by_hand = _sign_raw(
        key, {"alg": "RS256", "kid": key.kid}, json.dumps(_claims()).encode()
    )
    for token in (_sign(kit, _claims(aud=["x", RESOURCE])), by_hand):
        access = asyncio.run(kit.shim.verifier.verify_token(token))
        assert access is not None and access.subject == "u"


# -- the bridge: malformed JSON-RPC is not a 500 -----------------------------------------------


BRIDGE_BODIES = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":'
    + b'{"a":' * 5000
    + b"1"
    + b"}" * 5001,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_item","arguments":{"item_id":"a\\ud800"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_item","arguments":{"name":"\\ud800","price":1}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\ud800"}}',
]


def test_bridge_answers_hostile_json_rpc_without_a_500() -> None:
    # Deep nesting and lone surrogates (valid JSON escapes, not encodable as UTF-8).
    from mcp_bridge import MCPBridge
    from tests.bridge.sample_app import build_app

    app, _calls = build_app()
    MCPBridge(app).mount_http("/mcp", stateless=True, json_response=True)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    offenders = []
    with TestClient(
        app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False
    ) as client:
        for body in BRIDGE_BODIES:
            response = client.post("/mcp", content=body, headers=headers)
            if response.status_code >= 500:
                offenders.append((body[:80], response.status_code))
    assert offenders == []


# -- shim.protect and the reverse proxy of `serve --mcp-upstream` ------------------------------


def _guarded_proxy(kit: Kit) -> tuple[TestClient, list[httpx.Request]]:
    """The app `mcp-oauth-shim serve --mcp-upstream http://127.0.0.1:7777/mcp` builds."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from mcp_oauth_shim.mcp_proxy import MCPReverseProxy

    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": {}})

    proxy = MCPReverseProxy(
        "http://127.0.0.1:7777/mcp",
        mount_path="/mcp",
        http=httpx.AsyncClient(transport=httpx.MockTransport(upstream)),
    )
    guarded = kit.shim.protect(proxy)
    app = Starlette(
        routes=[
            *kit.shim.routes,
            Route("/mcp", guarded),
            Route("/mcp/{rest:path}", guarded),
        ]
    )
    return _lenient(app), seen


def test_an_unauthenticated_preflight_carries_no_request_to_the_protected_server() -> (
    None
):
    # A CORS preflight has no body and no credentials; this one is a tool call in disguise.
    client, seen = _guarded_proxy(make_kit())
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "delete_everything", "arguments": {}},
    }
    client.request(
        "OPTIONS",
        "/mcp",
        content=json.dumps(call),
        headers={
            "Access-Control-Request-Method": "POST",
            "Content-Type": "application/json",
            "X-HTTP-Method-Override": "POST",
        },
    )
    assert [(r.method, r.content) for r in seen] in ([], [("OPTIONS", b"")])


@pytest.mark.parametrize("path", ["/mcp/%2e%2e/admin", "/mcp/x%3Fdebug=1"])
def test_the_proxy_never_leaves_the_upstream_mcp_path(path: str) -> None:
    kit = make_kit()
    client, seen = _guarded_proxy(kit)
    token = _sign(kit, _claims())
    client.get(path, headers={"Authorization": "Bearer " + token})
    for request in seen:
        assert request.url.path.startswith("/mcp")
        assert ".." not in request.url.path
        assert request.url.query == b""

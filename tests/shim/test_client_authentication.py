"""Client authentication at the token and revocation endpoints (RFC 6749 §2.3, §5.2; RFC 7009 §2.1).

Every client the shim serves is public, so a client names itself with ``client_id`` and presents
no secret (or an empty one); the static client is the IdP's own, whose secret it may present.
A failed attempt with HTTP Basic is answered 401 ``invalid_client`` with a ``Basic`` challenge;
a failed attempt in the body 400 ``invalid_client``. Nothing is sent to the IdP either way.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from .kit import CLIENT_REDIRECT, Kit, make_kit


def basic(user_pass: bytes | str) -> str:
    raw = user_pass.encode() if isinstance(user_pass, str) else user_pass
    return "Basic " + base64.b64encode(raw).decode()


def static_kit() -> Kit:
    return make_kit(registration="static", allowed_redirect_uris=[CLIENT_REDIRECT])


@dataclass(frozen=True)
class Attempt:
    """What a request presents: an Authorization header and body fields, given the logged-in
    client's id and the IdP's (static) client secret."""

    authorization: Callable[[str, str], str | None]
    body: Callable[[str, str], dict[str, str]] = lambda client_id, secret: {}


def _code_form(login: dict[str, str]) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": login["code"],
        "redirect_uri": CLIENT_REDIRECT,
        "code_verifier": login["verifier"],
    }


def _post(kit: Kit, endpoint: str, login: dict[str, str], attempt: Attempt) -> httpx.Response:
    form = _code_form(login) if endpoint == "/oauth/token" else {"token": "some-token"}
    form.update(attempt.body(login["client_id"], kit.idp.client_secret))
    authorization = attempt.authorization(login["client_id"], kit.idp.client_secret)
    headers = {"Authorization": authorization} if authorization is not None else {}
    return kit.client.post(endpoint, data=form, headers=headers)


BASIC_FAILURES = {
    "another scheme": (make_kit, Attempt(lambda c, s: "Bearer some-access-token")),
    "Basic without credentials": (make_kit, Attempt(lambda c, s: "Basic")),
    "Basic with bad base64": (make_kit, Attempt(lambda c, s: "Basic !!!not-base64!!!")),
    "Basic that is not UTF-8": (make_kit, Attempt(lambda c, s: basic(b"\xff\xfe:"))),
    "Basic without a colon": (make_kit, Attempt(lambda c, s: basic(c))),
    "Basic with an empty client_id": (make_kit, Attempt(lambda c, s: basic(":"))),
    "Basic naming another client than the body": (
        make_kit,
        Attempt(lambda c, s: basic("someone-else:"), lambda c, s: {"client_id": c}),
    ),
    "Basic naming an unknown client": (make_kit, Attempt(lambda c, s: basic("forged-client-id:"))),
    "Basic with a secret for a public client": (make_kit, Attempt(lambda c, s: basic(f"{quote(c, safe='')}:guess"))),
    "Basic with the wrong secret of the static client": (
        static_kit,
        Attempt(lambda c, s: basic(f"{quote(c, safe='')}:{quote(s + 'x', safe='')}")),
    ),
}


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/revoke"])
@pytest.mark.parametrize(("make", "attempt"), BASIC_FAILURES.values(), ids=BASIC_FAILURES.keys())
def test_failed_basic_authentication_is_401_with_a_basic_challenge(endpoint, make, attempt):
    kit = make()
    login = kit.login()
    response = _post(kit, endpoint, login, attempt)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["cache-control"] == "no-store"
    assert kit.exchange(login).status_code == 200  # the code never reached the IdP


BODY_FAILURES = {
    "a secret for a public client": (make_kit, Attempt(lambda c, s: None, lambda c, s: {"client_id": c, "client_secret": "guess"})),
    "the wrong secret of the static client": (
        static_kit,
        Attempt(lambda c, s: None, lambda c, s: {"client_id": c, "client_secret": s + "x"}),
    ),
    "an unknown client": (make_kit, Attempt(lambda c, s: None, lambda c, s: {"client_id": "forged-client-id"})),
}


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/revoke"])
@pytest.mark.parametrize(("make", "attempt"), BODY_FAILURES.values(), ids=BODY_FAILURES.keys())
def test_failed_authentication_in_the_body_is_400_invalid_client(endpoint, make, attempt):
    kit = make()
    login = kit.login()
    response = _post(kit, endpoint, login, attempt)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers
    assert kit.exchange(login).status_code == 200


def test_a_secret_in_both_the_header_and_the_body_is_an_invalid_request(kit):
    login = kit.login()
    # A body secret with a value: "client_secret=" alone counts as omitted (RFC 6749 §3.2).
    attempt = Attempt(lambda c, s: basic(f"{quote(c, safe='')}:"), lambda c, s: {"client_secret": "x"})
    response = _post(kit, "/oauth/token", login, attempt)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


ACCEPTED = {
    "client_id in the body": (make_kit, Attempt(lambda c, s: None, lambda c, s: {"client_id": c})),
    "an empty secret in the body": (make_kit, Attempt(lambda c, s: None, lambda c, s: {"client_id": c, "client_secret": ""})),
    "Basic with an empty secret": (make_kit, Attempt(lambda c, s: basic(f"{quote(c, safe='')}:"))),
    "Basic and the same client_id in the body": (
        make_kit,
        Attempt(lambda c, s: basic(f"{quote(c, safe='')}:"), lambda c, s: {"client_id": c}),
    ),
    "the static client without a secret": (static_kit, Attempt(lambda c, s: None, lambda c, s: {"client_id": c})),
    "the static client's secret in Basic": (
        static_kit,
        Attempt(lambda c, s: basic(f"{quote(c, safe='')}:{quote(s, safe='')}")),
    ),
    "the static client's secret in the body": (
        static_kit,
        Attempt(lambda c, s: None, lambda c, s: {"client_id": c, "client_secret": s}),
    ),
}


@pytest.mark.parametrize(("make", "attempt"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_public_client_or_the_static_clients_secret_is_accepted(make, attempt):
    kit = make()
    login = kit.login()
    response = _post(kit, "/oauth/token", login, attempt)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]

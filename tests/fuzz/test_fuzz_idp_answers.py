"""The identity provider's answers replaced by arbitrary ones: discovery, token, revocation, JWKS
and introspection get any status, headers and body, or a transport failure.

A fault-injecting transport sits in front of the development IdP and replaces the answer of
one endpoint per example. Properties: the shim's answer is what it would be for a working IdP,
or an RFC-shaped error; a 5xx only as 502/503/504 JSON with ``server_error`` or
``temporarily_unavailable`` (an HTML page on the browser endpoints); a redirect only to the
authorization endpoint the IdP's (issuer-checked) metadata names; nothing the IdP sent that is
meant for the shim alone (its ID token, its raw refresh token) and no secret in the answer or
the logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.sealing import digest

from .properties import (
    BEARER_ERRORS,
    TOKEN_ERRORS,
    REVOCATION_ERRORS,
    assert_bearer_challenge,
    assert_html_error_page,
    assert_json_error,
    assert_no_server_error,
    assert_nothing_leaks,
    assert_redirect_only_to,
    captured_logs,
)
from tests.shim.kit import SECRET_KEY

from .setups import CLIENT_REDIRECT, HTTP_PUBLIC_URL, IDP_ISSUER, FuzzKit, build_kit, pkce_pair
from .strategies import FORM, FUZZ, header_values, hostile_text, hostile_urls, planted

DISCOVERY = "/.well-known/openid-configuration"
TOKEN = "/oauth/token"
REVOKE = "/oauth/revoke"
JWKS = "/.well-known/jwks.json"
INTROSPECT = "/introspect"


@dataclass
class Fault:
    """What the IdP answers at ``path`` instead of the real answer."""

    path: str
    respond: Callable[[httpx.Request], httpx.Response] | None


class FaultyIdP(httpx.AsyncBaseTransport):
    """The development IdP, except at the faulted path. Discovery may also be rewritten (to add
    an introspection endpoint) without being faulted."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.fault: Fault | None = None
        self.discovery_extra: dict[str, str] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fault is not None and request.url.path == self.fault.path and self.fault.respond is not None:
            await request.aread()
            return self.fault.respond(request)
        response = await self.inner.handle_async_request(request)
        if request.url.path == DISCOVERY and self.discovery_extra:
            await response.aread()
            document = {**json.loads(response.content), **self.discovery_extra}
            return httpx.Response(200, json=document)
        return response


# -- arbitrary answers -------------------------------------------------------------------------

TRANSPORT_FAILURES = [
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
    httpx.ConnectTimeout("slow"),
    httpx.RemoteProtocolError("framing"),
    httpx.ReadError("reset"),
]


@dataclass
class IdPAnswer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    failure: Exception | None = None
    planted: list[str] = field(default_factory=list)
    passthrough: bool = False

    @property
    def responder(self) -> Callable[[httpx.Request], httpx.Response] | None:
        return None if self.passthrough else self.respond

    def respond(self, request: httpx.Request) -> httpx.Response:
        if self.failure is not None:
            raise self.failure
        return httpx.Response(self.status, headers=[(k, v.encode("latin-1")) for k, v in self.headers], content=self.body)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)


@st.composite
def idp_answers(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[object]], good: dict[str, object] | None = None) -> IdPAnswer:
    """The good answer (``good`` as a 200 JSON object, or the real IdP's when ``None``) with up
    to two of status, body, fields and headers spoiled; or, one time in eight, a transport
    failure. ``fields`` maps the fields of a good answer to strategies for any value."""
    if draw(st.integers(0, 7)) == 0:
        return IdPAnswer(failure=draw(st.sampled_from(TRANSPORT_FAILURES)))
    spoil = draw(st.sets(st.sampled_from(["status", "body", "fields", "headers"]), max_size=2))
    if not spoil and good is None:
        return IdPAnswer(passthrough=True)
    status = 200
    if "status" in spoil:
        status = draw(st.one_of(st.sampled_from([400, 401, 403, 404, 500, 502, 503, 301, 204]), st.integers(100, 599)))
    document: dict[str, object] = dict(good or {})
    if "fields" in spoil or good is None:
        for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, min_size=1)):
            document[name] = draw(fields[name])
        for name, value in draw(st.dictionaries(hostile_text, json_scalars, max_size=2)).items():
            document.setdefault(name, value)
    planted_values = [
        str(document[name]) for name in ("id_token", "refresh_token") if str(document.get(name, "")).startswith("PLANTED")
    ]
    body = json.dumps(document).encode()
    if "body" in spoil:
        kind = draw(st.sampled_from(["json", "bytes", "empty", "empty", "large"]))
        planted_values = []
        if kind == "json":
            body = json.dumps(draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=3)))).encode()
        elif kind == "bytes":
            body = draw(st.binary(max_size=200))
        elif kind == "empty":
            body = b""
        else:
            body = b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    headers = [("content-type", "application/json")]
    if "headers" in spoil:
        headers = [("content-type", draw(st.one_of(st.sampled_from(["text/html", "application/jwt", ""]), header_values)))]
        for name in draw(st.lists(st.sampled_from(["content-encoding", "set-cookie", "location", "www-authenticate", "cache-control"]), unique=True, max_size=2)):
            headers.append((name, draw(st.one_of(st.sampled_from(["gzip", "br", "x=1", "https://evil.example/"]), header_values))))
    return IdPAnswer(status, headers, body, planted=planted_values)


token_fields: dict[str, st.SearchStrategy[object]] = {
    "access_token": st.one_of(st.just("at-from-idp"), json_scalars),
    "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", "DPoP", "N_A"]), json_scalars),
    "expires_in": st.one_of(st.integers(-10, 10**12), json_scalars),
    "refresh_token": st.one_of(planted, json_scalars),
    "id_token": st.one_of(planted, json_scalars),
    "scope": st.one_of(st.just("openid profile"), json_scalars),
    "error": st.one_of(st.sampled_from(sorted(TOKEN_ERRORS | {"server_error", "temporarily_unavailable", "unsupported_token_type", "slow_down"})), json_scalars),
    "error_description": json_scalars,
}

discovery_fields: dict[str, st.SearchStrategy[object]] = {
    "issuer": st.one_of(st.just(IDP_ISSUER), st.just(IDP_ISSUER), hostile_urls, json_scalars),
    "authorization_endpoint": st.one_of(st.just(IDP_ISSUER + "/authorize"), hostile_urls, json_scalars),
    "token_endpoint": st.one_of(st.just(IDP_ISSUER + TOKEN), hostile_urls, json_scalars),
    "revocation_endpoint": st.one_of(st.just(IDP_ISSUER + REVOKE), hostile_urls, json_scalars),
    "jwks_uri": st.one_of(st.just(IDP_ISSUER + JWKS), hostile_urls, json_scalars),
    "authorization_response_iss_parameter_supported": json_scalars,
}

jwk_fields: dict[str, st.SearchStrategy[object]] = {
    "keys": st.one_of(
        st.lists(
            st.dictionaries(
                st.sampled_from(["kty", "kid", "alg", "use", "n", "e", "crv", "x", "y", "k", "key_ops"]),
                st.one_of(st.sampled_from(["RSA", "EC", "oct", "OKP", "RS256", "ES256", "none", "HS256", "AQAB", "P-256", "sig"]), json_scalars, st.lists(json_scalars, max_size=2)),
                max_size=6,
            ),
            max_size=3,
        ),
        json_scalars,
    ),
}

introspection_fields: dict[str, st.SearchStrategy[object]] = {
    "active": st.one_of(st.just(True), json_scalars),
    "iss": st.one_of(st.just(IDP_ISSUER), hostile_urls, json_scalars),
    "aud": st.one_of(st.just(HTTP_PUBLIC_URL + "/mcp"), st.lists(st.one_of(st.just(HTTP_PUBLIC_URL + "/mcp"), hostile_text), max_size=2), json_scalars),
    "exp": st.one_of(st.integers(0, 2**40), json_scalars),
    "nbf": st.one_of(st.integers(0, 2**40), json_scalars),
    "iat": st.one_of(st.integers(0, 2**40), json_scalars),
    "scope": st.one_of(hostile_text, json_scalars),
    "sub": json_scalars,
    "client_id": json_scalars,
}


# -- the shim under test -----------------------------------------------------------------------


@dataclass
class Faulted:
    kit: FuzzKit
    idp: FaultyIdP
    client_id: str
    verifier: str
    challenge: str
    ticket: str
    csrf: str
    access_token: str
    refresh_token: str

    def fresh_shim(self) -> tuple[OAuthShim, TestClient]:
        """A new shim (nothing discovered or cached yet) with the same keys and IdP."""
        shim = OAuthShim(
            public_url=HTTP_PUBLIC_URL,
            upstream=self.kit.shim.upstream,
            secret_keys=[SECRET_KEY],
            http_client=httpx.AsyncClient(transport=self.idp, base_url=IDP_ISSUER),
            client_metadata_documents=False,
        )
        return shim, TestClient(shim.app, base_url=HTTP_PUBLIC_URL, raise_server_exceptions=False)

    def code_form(self, shim: OAuthShim) -> dict[str, str]:
        from mcp_oauth_shim.sealing import CODE

        code = shim.context.sealer.seal(
            CODE, {"u": "upstream-code", "c": digest(self.client_id), "r": CLIENT_REDIRECT, "rg": 1, "cc": self.challenge, "sc": "openid"}
        )
        return {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": self.verifier,
            "redirect_uri": CLIENT_REDIRECT,
            "client_id": self.client_id,
        }


@pytest.fixture(scope="module")
def faulted() -> Faulted:
    kit = build_kit()
    login = kit.login()
    tokens = kit.exchange(login).json()
    idp = FaultyIdP(httpx.ASGITransport(app=kit.idp.app))
    verifier, challenge = pkce_pair()
    fields, cookies = kit.consent_page(kit.authorize_query(login["client_id"], challenge))
    return Faulted(
        kit, idp, login["client_id"], verifier, challenge, fields["ticket"], cookies["mcp-shim-csrf"], tokens["access_token"], tokens["refresh_token"]
    )


def _exchange(faulted: Faulted, answer: IdPAnswer, path: str):  # type: ignore[no-untyped-def]
    faulted.idp.fault = Fault(path, answer.responder)
    faulted.idp.discovery_extra = {}
    shim, client = faulted.fresh_shim()
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = client.post("/oauth/token", data=faulted.code_form(shim), headers={"content-type": FORM})
    return response, logs


GOOD_TOKENS = {"access_token": "at-from-idp", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "PLANTEDrefresh-from-idp", "id_token": "PLANTEDid-token-from-idp", "scope": "openid profile"}
GOOD_DISCOVERY = {
    "issuer": IDP_ISSUER,
    "authorization_endpoint": IDP_ISSUER + "/authorize",
    "token_endpoint": IDP_ISSUER + TOKEN,
    "revocation_endpoint": IDP_ISSUER + REVOKE,
    "jwks_uri": IDP_ISSUER + JWKS,
}
GOOD_INTROSPECTION = {"active": True, "iss": IDP_ISSUER, "aud": HTTP_PUBLIC_URL + "/mcp", "exp": 2**40, "scope": "openid", "sub": "u1"}
IDP_FUZZ = settings(FUZZ, max_examples=100)
# A redirect whose Set-Cookie value is not ASCII: httpx builds the next request (even when not
# following redirects) and fails with UnicodeEncodeError, outside httpx.HTTPError.
REDIRECT_WITH_LATIN1_COOKIE = IdPAnswer(301, [("set-cookie", "\x80"), ("location", "again")], b"{}")


@IDP_FUZZ
@given(answer=idp_answers(token_fields, GOOD_TOKENS))
def test_token_endpoint_answers_tokens_or_a_json_error_whatever_the_idp_answers(faulted: Faulted, answer: IdPAnswer) -> None:
    response, logs = _exchange(faulted, answer, TOKEN)
    event(f"status {response.status_code}")
    if response.status_code == 200:
        body = response.json()
        assert isinstance(body["access_token"], str) and body["access_token"]
        assert body["token_type"] == "Bearer"
        assert "id_token" not in body
    else:
        assert_json_error(response, TOKEN_ERRORS)
    assert_nothing_leaks(response, logs, [*faulted.kit.secrets, *answer.planted])


@IDP_FUZZ
@given(answer=idp_answers(discovery_fields, GOOD_DISCOVERY))
@example(answer=REDIRECT_WITH_LATIN1_COOKIE)
def test_token_endpoint_gives_502_or_504_json_when_discovery_fails(faulted: Faulted, answer: IdPAnswer) -> None:
    response, logs = _exchange(faulted, answer, DISCOVERY)
    event(f"status {response.status_code}")
    if response.status_code != 200:
        assert_json_error(response, TOKEN_ERRORS)
    assert_nothing_leaks(response, logs, faulted.kit.secrets)


@IDP_FUZZ
@given(answer=idp_answers(discovery_fields, GOOD_DISCOVERY))
@example(answer=REDIRECT_WITH_LATIN1_COOKIE)
def test_consent_redirects_only_to_the_discovered_authorization_endpoint(faulted: Faulted, answer: IdPAnswer) -> None:
    faulted.idp.fault = Fault(DISCOVERY, answer.responder)
    shim, client = faulted.fresh_shim()
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = client.post(
            "/oauth/consent",
            data={"ticket": faulted.ticket, "decision": "approve"},
            headers={"cookie": f"mcp-shim-csrf={faulted.csrf}"},
            follow_redirects=False,
        )
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    document = json.loads(answer.body) if answer.failure is None and answer.status == 200 and answer.body.startswith(b"{") else {}
    authorize = document.get("authorization_endpoint") if document.get("issuer") == IDP_ISSUER else None
    assert_redirect_only_to(response, [], authorize if isinstance(authorize, str) else None)
    if "location" not in response.headers:
        assert_html_error_page(response)
    assert_nothing_leaks(response, logs, faulted.kit.secrets)


@IDP_FUZZ
@given(answer=idp_answers(token_fields, {}), which=st.sampled_from(["refresh", "access"]))
def test_revocation_answers_200_or_a_json_error_whatever_the_idp_answers(faulted: Faulted, answer: IdPAnswer, which: str) -> None:
    faulted.idp.fault = Fault(REVOKE, answer.responder)
    faulted.idp.discovery_extra = {}
    shim, client = faulted.fresh_shim()
    token = faulted.refresh_token if which == "refresh" else faulted.access_token
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = client.post("/oauth/revoke", data={"token": token, "client_id": faulted.client_id})
    event(f"status {response.status_code}")
    if response.status_code != 200:
        assert_json_error(response, REVOCATION_ERRORS)
    assert_nothing_leaks(response, logs, [*faulted.kit.secrets, token])


async def _protected(request):  # type: ignore[no-untyped-def]
    return PlainTextResponse("tool ran")


@IDP_FUZZ
@given(
    answer=idp_answers(jwk_fields),
    path=st.sampled_from([JWKS, JWKS, INTROSPECT, DISCOVERY]),
    token=st.one_of(st.just("real"), planted),
)
@example(answer=REDIRECT_WITH_LATIN1_COOKIE, path=JWKS, token="real")
def test_bearer_check_answers_401_403_or_502_504_json_whatever_the_idp_answers(
    faulted: Faulted, answer: IdPAnswer, path: str, token: str
) -> None:
    """JWKS, introspection and discovery faults while verifying a bearer token (RFC 6750 §3 for
    the token's faults, 502/504 JSON for the IdP's)."""
    faulted.idp.fault = Fault(path, answer.responder)
    faulted.idp.discovery_extra = {"introspection_endpoint": IDP_ISSUER + INTROSPECT}
    shim, _ = faulted.fresh_shim()
    app = Starlette(routes=[Route("/mcp", _protected, methods=["POST"])])
    client = TestClient(shim.protect(app), base_url=HTTP_PUBLIC_URL, raise_server_exceptions=False)
    bearer = faulted.access_token if token == "real" else token
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = client.post("/mcp", headers={"authorization": f"Bearer {bearer}"})
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    if response.status_code in (401, 403):
        params = assert_bearer_challenge(response)
        assert params.get("error", "invalid_token") in BEARER_ERRORS
    elif response.status_code != 200:
        assert_json_error(response, set())
    else:
        assert response.text == "tool ran"
    secrets = [*faulted.kit.secrets] + ([bearer] if token != "real" else [])
    assert_nothing_leaks(response, logs, secrets)


@IDP_FUZZ
@given(answer=idp_answers(introspection_fields, GOOD_INTROSPECTION), token=planted)
def test_opaque_tokens_are_refused_or_accepted_only_as_introspection_allows(faulted: Faulted, answer: IdPAnswer, token: str) -> None:
    faulted.idp.fault = Fault(INTROSPECT, answer.responder)
    faulted.idp.discovery_extra = {"introspection_endpoint": IDP_ISSUER + INTROSPECT}
    shim, _ = faulted.fresh_shim()
    app = Starlette(routes=[Route("/mcp", _protected, methods=["POST"])])
    client = TestClient(shim.protect(app), base_url=HTTP_PUBLIC_URL, raise_server_exceptions=False)
    with captured_logs(HTTP_PUBLIC_URL) as logs:
        response = client.post("/mcp", headers={"authorization": f"Bearer {token}"})
    event(f"status {response.status_code}")
    assert_no_server_error(response)
    if response.status_code == 200:
        claims = json.loads(answer.body)
        assert claims["active"] is True
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        assert HTTP_PUBLIC_URL + "/mcp" in audience
    elif response.status_code in (401, 403):
        assert_bearer_challenge(response)
    else:
        assert_json_error(response, set())
    assert_nothing_leaks(response, logs, [*faulted.kit.secrets, token])

"""The identity provider fails; the shim answers clearly, sends nothing twice, and recovers.

A loopback IdP (tests/shim/faulty_idp.py) misbehaves on purpose at each place the shim calls
it: discovery (needed to redirect from the consent page to the IdP), the token endpoint for a
code and for a refresh token, revocation, JWKS and introspection (the bearer check in front of
an MCP endpoint). The shim runs with its own HTTP clients (the keep-alive pool for POSTs, httpx
for documents) and a one-second IdP timeout. For every fault and place:

- the client gets a JSON (or, for the browser's consent page, HTML) 502/503/504 within the
  timeout plus a generous margin, and a 429 or 503 with ``Retry-After`` from the IdP becomes a
  503 with that ``Retry-After``;
- the IdP received the single-use code or refresh token at most once;
- the shim keeps serving other requests meanwhile;
- once the IdP is healthy again, the same step succeeds without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.upstream.client import DISCOVERY_TTL

from .faulty_idp import CLIENT_ID, CLIENT_SECRET, FAULTS, FaultyIdP
from .kit import pkce_pair

pytestmark = pytest.mark.anyio

SHIM_URL = "http://127.0.0.1:8000"
RESOURCE = SHIM_URL + "/mcp"
CLIENT_REDIRECT = "http://127.0.0.1:53682/callback"
SECRET_KEY = "f" * 48
IDP_TIMEOUT = 1.0
# Bounded time, not a performance figure: the IdP timeout plus room for a busy machine.
ANSWER_WITHIN = IDP_TIMEOUT + 2.0 + 3.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"client_id": scope["user"].access_token.client_id})(scope, receive, send)


@dataclass
class Setup:
    """The IdP, the shim in front of it, and a cookie-keeping client of the shim."""

    idp: FaultyIdP
    shim: OAuthShim
    client: httpx.AsyncClient
    login: dict[str, str] = field(default_factory=dict)

    # -- the steps of a login, through the shim's public HTTP surface ------------------------

    async def register(self) -> str:
        response = await self.client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": "t"})
        assert response.status_code == 201, response.text
        return str(response.json()["client_id"])

    async def consent(self) -> httpx.Response:
        """authorize -> consent page -> approve: the redirect to the IdP (needs discovery)."""
        client_id = self.login.get("client_id") or await self.register()
        verifier, challenge = pkce_pair()
        self.login.update(client_id=client_id, verifier=verifier)
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "client-state",
            "resource": RESOURCE,
        }
        page = await self.client.get("/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        form = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
        return await self.client.post("/oauth/consent", data={**form, "decision": "approve"})

    async def code(self) -> str:
        """A whole browser part: the shim's authorization code for the client."""
        consent = await self.consent()
        assert consent.status_code == 303, consent.text
        state = parse_qs(urlsplit(consent.headers["location"]).query)["state"][0]
        idp_code = f"idp-code-{time.monotonic_ns()}"
        relay = await self.client.get("/oauth/callback", params={"code": idp_code, "state": state, "iss": self.idp.issuer})
        assert relay.status_code == 302, relay.text
        self.login["idp_code"] = idp_code
        return parse_qs(urlsplit(relay.headers["location"]).query)["code"][0]

    async def exchange(self, code: str) -> httpx.Response:
        return await self.client.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CLIENT_REDIRECT,
                "code_verifier": self.login["verifier"],
                "client_id": self.login["client_id"],
            },
        )

    async def refresh_token(self) -> str:
        """A refresh token from a complete login (the IdP's is sealed inside it)."""
        tokens = await self.exchange(await self.code())
        assert tokens.status_code == 200, tokens.text
        return str(tokens.json()["refresh_token"])

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.login["client_id"]},
        )

    async def revoke(self, token: str) -> httpx.Response:
        return await self.client.post("/oauth/revoke", data={"token": token, "client_id": self.login["client_id"]})

    async def call_mcp(self, token: str) -> httpx.Response:
        return await self.client.post("/mcp", headers={"Authorization": f"Bearer {token}"}, json={})


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    idp = FaultyIdP(RESOURCE)
    await idp.start()
    upstream = Upstream.oidc(
        issuer=idp.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, audience=RESOURCE, timeout=IDP_TIMEOUT
    )
    shim = OAuthShim(public_url=SHIM_URL, resource=RESOURCE, upstream=upstream, secret_keys=[SECRET_KEY])
    app = Starlette(routes=[*shim.routes, Route("/mcp", shim.protect(whoami), methods=["POST"])])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SHIM_URL, timeout=30.0)
    try:
        yield Setup(idp, shim, client)
    finally:
        await client.aclose()
        await shim.aclose()
        await idp.close()


# -- the places the shim calls the IdP ---------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """One call to the IdP: the endpoint that misbehaves, what comes before (with the IdP
    healthy) and the step whose answer is checked; ``browser``: an HTML page, not JSON."""

    endpoint: str
    prepare: Callable[[Setup], Awaitable[Any]]
    step: Callable[[Setup, Any], Awaitable[httpx.Response]]
    browser: bool = False


async def _nothing(s: Setup) -> None:
    return None


async def _consent(s: Setup, _: Any) -> httpx.Response:
    return await s.consent()


async def _exchange(s: Setup, code: str) -> httpx.Response:
    return await s.exchange(code)


async def _refresh(s: Setup, token: str) -> httpx.Response:
    return await s.refresh(token)


async def _revoke(s: Setup, token: str) -> httpx.Response:
    return await s.revoke(token)


async def _discovered(s: Setup) -> None:
    """Discovery done (cached), nothing else: a consent page sent to the IdP."""
    assert (await s.consent()).status_code == 303


async def _jwt(s: Setup) -> str:
    await _discovered(s)
    return s.idp.sign()


async def _opaque(s: Setup) -> str:
    await _discovered(s)
    token = "opaque-" + "o" * 30
    s.idp.active[token] = {"active": True, "aud": RESOURCE, "client_id": CLIENT_ID, "scope": "openid", "sub": "user-1"}
    return token


async def _call_mcp(s: Setup, token: str) -> httpx.Response:
    return await s.call_mcp(token)


PLACES = {
    "discovery for the consent redirect": Place("discovery", _nothing, _consent, browser=True),
    "token endpoint with a code": Place("token", Setup.code, _exchange),
    "token endpoint with a refresh token": Place("token", Setup.refresh_token, _refresh),
    "revocation": Place("revoke", Setup.refresh_token, _revoke),
    "JWKS for a bearer token": Place("jwks", _jwt, _call_mcp),
    "introspection for a bearer token": Place("introspect", _opaque, _call_mcp),
}

# Faults of the whole IdP (no TCP connection) and of one endpoint (an HTTP exchange).
UNREACHABLE = {"connection refused": FaultyIdP.refuse_connections, "connect timeout": FaultyIdP.drop_connections}
ALL_FAULTS = [*UNREACHABLE, *FAULTS]
CASES = [(place, fault) for place in PLACES for fault in ALL_FAULTS]


async def inject(idp: FaultyIdP, endpoint: str, fault: str) -> None:
    if fault in UNREACHABLE:
        await UNREACHABLE[fault](idp)
    else:
        idp.faults[endpoint] = FAULTS[fault]


async def failing_step(setup: Setup, place: Place, fault: str) -> tuple[httpx.Response, Any]:
    """Prepare with a healthy IdP, inject ``fault``, run the step: its answer and input."""
    given = await place.prepare(setup)
    await inject(setup.idp, place.endpoint, fault)
    started = time.monotonic()
    answer = await asyncio.wait_for(place.step(setup, given), ANSWER_WITHIN)
    assert time.monotonic() - started < ANSWER_WITHIN
    return answer, given


def ids(cases: list[tuple[str, str]]) -> list[str]:
    return [f"{fault} at {place}" for place, fault in cases]


@pytest.mark.parametrize(("place", "fault"), CASES, ids=ids(CASES))
async def test_the_client_gets_a_clear_error_in_bounded_time(setup: Setup, place: str, fault: str) -> None:
    answer, _ = await failing_step(setup, PLACES[place], fault)
    assert answer.status_code in (502, 503, 504), answer.text
    if PLACES[place].browser:
        assert answer.headers["content-type"].startswith("text/html")
    else:
        body = answer.json()
        assert body["error"] in ("temporarily_unavailable", "server_error")
        assert isinstance(body.get("error_description"), str) and body["error_description"]
        assert answer.headers.get("cache-control") == "no-store"


RETRY_AFTER_CASES = [(place, fault) for place, fault in CASES if "Retry-After" in fault]


@pytest.mark.parametrize(("place", "fault"), RETRY_AFTER_CASES, ids=ids(RETRY_AFTER_CASES))
async def test_an_idp_asking_to_retry_later_becomes_503_with_retry_after(setup: Setup, place: str, fault: str) -> None:
    answer, _ = await failing_step(setup, PLACES[place], fault)
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("retry-after") == "7"


SINGLE_USE = [(place, fault) for place, fault in CASES if PLACES[place].endpoint == "token"]


@pytest.mark.parametrize(("place", "fault"), SINGLE_USE, ids=ids(SINGLE_USE))
async def test_a_code_or_refresh_token_reaches_the_idp_at_most_once(setup: Setup, place: str, fault: str) -> None:
    await failing_step(setup, PLACES[place], fault)
    await asyncio.sleep(IDP_TIMEOUT)  # anything the shim might still send in the background
    sent = setup.idp.codes if place == "token endpoint with a code" else setup.idp.refresh_tokens
    assert all(count == 1 for count in sent.values()), sent
    expected_at_the_idp = 0 if fault in UNREACHABLE else 1
    last = setup.login["idp_code"] if sent is setup.idp.codes else None
    if last is not None:
        assert sent[last] == expected_at_the_idp


@pytest.mark.parametrize(("place", "fault"), CASES, ids=ids(CASES))
async def test_the_shim_serves_other_requests_while_the_idp_fails(setup: Setup, place: str, fault: str) -> None:
    given = await PLACES[place].prepare(setup)
    await inject(setup.idp, PLACES[place].endpoint, fault)
    step = asyncio.ensure_future(PLACES[place].step(setup, given))
    metadata = await asyncio.wait_for(setup.client.get("/.well-known/oauth-authorization-server"), 5.0)
    registered = await asyncio.wait_for(setup.register(), 5.0)
    await asyncio.wait_for(step, ANSWER_WITHIN)
    assert metadata.status_code == 200 and registered


# The JWKS is the one document the shim does not ask for again at once after a failure: it
# answers from the failure for a few seconds (see JWKS_FAILURE_BACKOFF) rather than have every
# request queue behind another timeout. Everything else is asked again by the next request.
JWKS_FAILURE_BACKOFF = 5.0
AT_ONCE = [(place, fault) for place, fault in CASES if PLACES[place].endpoint != "jwks"]
AFTER_THE_BACKOFF = [(place, fault) for place, fault in CASES if PLACES[place].endpoint == "jwks"]


async def recovered_step(setup: Setup, spec: Place) -> httpx.Response:
    given = await spec.prepare(setup)  # a fresh code or refresh token: the old one may be spent
    return await asyncio.wait_for(spec.step(setup, given), ANSWER_WITHIN)


def succeeded(spec: Place, answer: httpx.Response) -> bool:
    return answer.status_code == (303 if spec.browser else 200)


@pytest.mark.parametrize(("place", "fault"), AT_ONCE, ids=ids(AT_ONCE))
async def test_the_next_request_succeeds_once_the_idp_is_back(setup: Setup, place: str, fault: str) -> None:
    spec = PLACES[place]
    await failing_step(setup, spec, fault)
    await setup.idp.recover()
    answer = await recovered_step(setup, spec)
    assert succeeded(spec, answer), answer.text


@pytest.mark.parametrize(("place", "fault"), AFTER_THE_BACKOFF, ids=ids(AFTER_THE_BACKOFF))
async def test_the_jwks_is_asked_again_after_a_short_backoff(setup: Setup, place: str, fault: str) -> None:
    spec = PLACES[place]
    await failing_step(setup, spec, fault)
    await setup.idp.recover()
    give_up = time.monotonic() + JWKS_FAILURE_BACKOFF + ANSWER_WITHIN
    answer = await recovered_step(setup, spec)
    while not succeeded(spec, answer) and time.monotonic() < give_up:
        assert answer.status_code in (502, 503, 504), answer.text  # the failure, not a bad token
        await asyncio.sleep(0.5)
        answer = await recovered_step(setup, spec)
    assert succeeded(spec, answer), answer.text


# -- the discovery document ------------------------------------------------------------------


async def test_a_wrong_issuer_in_discovery_is_a_502_naming_the_issuer(setup: Setup) -> None:
    setup.idp.discovery_changes["issuer"] = "https://impostor.example"
    answer = await setup.consent()
    assert answer.status_code == 502
    assert "issuer" in answer.text


async def test_discovery_is_read_again_after_a_wrong_issuer(setup: Setup) -> None:
    setup.idp.discovery_changes["issuer"] = "https://impostor.example"
    assert (await setup.consent()).status_code == 502
    setup.idp.discovery_changes.clear()
    assert (await setup.consent()).status_code == 303


@pytest.mark.parametrize("fault", ALL_FAULTS)
async def test_the_document_read_before_keeps_the_consent_redirect_working_while_the_idp_fails(
    setup: Setup, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An hour after discovery the document is due to be read again, and the IdP fails then.
    The shim tries, keeps the document it has, and the consent page still sends the browser
    to the IdP's authorization endpoint."""
    await _discovered(setup)
    an_hour_later = time.monotonic() + DISCOVERY_TTL
    setup.shim.upstream_client.clock = lambda: an_hour_later
    await inject(setup.idp, "discovery", fault)
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.upstream.client"):
        answer = await asyncio.wait_for(setup.consent(), ANSWER_WITHIN)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith(setup.idp.issuer + "/authorize?")
    assert any("keeping the document read before" in r.getMessage() for r in caplog.records)


MOVES = {
    "token endpoint": ("token", Setup.code, _exchange),
    "JWKS": ("jwks", _jwt, _call_mcp),
}


@pytest.mark.parametrize(("endpoint", "prepare", "step"), MOVES.values(), ids=MOVES.keys())
async def test_an_endpoint_moved_in_discovery_while_running_is_followed(
    setup: Setup, endpoint: str, prepare: Any, step: Any
) -> None:
    """The IdP's document changes after the shim cached it (the old URL answers 404): after
    that answer, the shim reads the document again (for the JWKS, after its failure backoff)."""
    await _discovered(setup)
    setup.idp.move(endpoint)
    give_up = time.monotonic() + JWKS_FAILURE_BACKOFF + ANSWER_WITHIN
    answer = await asyncio.wait_for(step(setup, await prepare(setup)), ANSWER_WITHIN)
    while answer.status_code != 200 and time.monotonic() < give_up:
        assert answer.status_code in (502, 503, 504), answer.text
        await asyncio.sleep(0.5)
        answer = await asyncio.wait_for(step(setup, await prepare(setup)), ANSWER_WITHIN)
    assert answer.status_code == 200, answer.text
    assert setup.idp.requests["discovery"] == 2


# -- an operator's own httpx client ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["discovery", "token"])
async def test_a_body_trickled_past_the_deadline_on_an_operators_httpx_client_is_a_504(endpoint: str) -> None:
    """httpx's timeouts apply per read, so a body trickled byte by byte never trips them: the
    shim bounds the whole exchange itself, whichever client carries it."""
    idp = FaultyIdP(RESOURCE)
    await idp.start()
    upstream = Upstream.oidc(
        issuer=idp.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, audience=RESOURCE, timeout=IDP_TIMEOUT
    )
    shim = OAuthShim(
        public_url=SHIM_URL, resource=RESOURCE, upstream=upstream, secret_keys=[SECRET_KEY], http_client=httpx.AsyncClient()
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=shim.app), base_url=SHIM_URL, timeout=30.0)
    setup = Setup(idp, shim, client)
    try:
        given = await setup.code() if endpoint == "token" else None
        idp.faults[endpoint] = FAULTS["body trickled past the deadline"]
        step = setup.exchange(given) if given is not None else setup.consent()
        answer = await asyncio.wait_for(step, ANSWER_WITHIN)
        assert answer.status_code == 504, answer.text
    finally:
        await client.aclose()
        await shim.aclose()
        await shim.upstream_client.http.aclose()  # type: ignore[union-attr]
        await idp.close()

"""Attacks on the authorization server's endpoints found in the adversarial review, each run
against a live in-process shim: every test names the behaviour that resists the attack."""

from __future__ import annotations

import logging
import re
import socket
import time

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.machine_clients import MachineClient

from tests.peers.servers import serve_asgi

from .kit import CLIENT_REDIRECT, SECRET_KEY, make_kit, pkce_pair
from .test_machine_grants import (
    ENTERPRISE,
    JB,
    MACHINE_CLIENTS,
    PUBLIC_URL,
    RESOURCE,
    SECRET,
    TOKEN,
    UPSTREAM,
    basic,
    machine_shim,
)

# -- scope escalation through the jwt-bearer grant -------------------------------------------


def test_an_id_jag_without_scope_for_a_client_without_scopes_grants_no_requested_scope() -> None:
    # Neither the enterprise IdP (no scope claim) nor the operator (scopes=()) granted anything:
    # the client's own request must not become the grant.
    unrestricted = MachineClient("agent-any", client_secret=SECRET, grant_types=frozenset({JB}))
    shim = machine_shim(machine_clients=(*MACHINE_CLIENTS, unrestricted))
    assertion = ENTERPRISE.id_jag(subject="alice@enterprise", client_id="agent-any", audience=PUBLIC_URL, resource=RESOURCE)
    with TestClient(shim.app, base_url=PUBLIC_URL) as client:
        response = client.post(TOKEN, data={"grant_type": JB, "assertion": assertion, "scope": "notes:admin"}, headers=basic("agent-any", SECRET))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_scope"
    assert response.headers["cache-control"] == "no-store"


# -- what a self-registered client may put on the consent page -------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Notes\u202eppA liaM", id="right-to-left-override"),
        pytest.param("Notes\u2066Mail\u2069", id="bidi-isolate"),
        pytest.param("Notes\u200fApp", id="right-to-left-mark"),
        pytest.param("Notes\nApproved by your administrator", id="line-break"),
        pytest.param("Notes\u2028App", id="line-separator"),
        pytest.param("Notes\x00App", id="nul"),
        pytest.param("Notes\x85App", id="c1-control"),
    ],
)
def test_a_registered_client_name_with_spoofing_characters_is_invalid_client_metadata(name: str) -> None:
    # The consent page shows the name; client ID metadata documents are refused for the same characters.
    response = make_kit().client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": name})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.headers["cache-control"] == "no-store"


# -- the consent form's same-origin check ------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "browser_origin"),
    [
        pytest.param("http://LOCALHOST:8000", "http://localhost:8000", id="upper-case-host"),
        pytest.param("http://127.0.0.1:80", "http://127.0.0.1", id="default-http-port"),
        pytest.param("https://MCP.example.com:443", "https://mcp.example.com", id="default-https-port"),
        pytest.param("HTTPS://mcp.example.com", "https://mcp.example.com", id="upper-case-scheme"),
    ],
)
def test_the_consent_form_posted_from_the_shims_own_origin_is_accepted_however_public_url_is_spelt(
    public_url: str, browser_origin: str
) -> None:
    # Browsers send the RFC 6454 serialization of the origin: lower-case scheme and host, no
    # default port. A public_url spelt otherwise is still the same origin, not "another site".
    shim = OAuthShim(public_url=public_url, upstream=UPSTREAM, secret_keys=[SECRET_KEY])
    with TestClient(shim.app, base_url=public_url) as browser:
        client_id = browser.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
        page = browser.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": CLIENT_REDIRECT,
                "code_challenge": pkce_pair()[1],
                "code_challenge_method": "S256",
                "state": "s-1",
            },
        )
        ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
        assert ticket is not None, page.text
        answer = browser.post(
            "/oauth/consent",
            data={"ticket": ticket[1], "decision": "deny"},
            headers={"Origin": browser_origin},
            follow_redirects=False,
        )
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(CLIENT_REDIRECT + "?error=access_denied")


def test_the_consent_form_posted_from_another_origin_is_still_refused() -> None:
    shim = OAuthShim(public_url="https://MCP.example.com:443", upstream=UPSTREAM, secret_keys=[SECRET_KEY])
    with TestClient(shim.app, base_url="https://mcp.example.com") as browser:
        client_id = browser.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
        page = browser.get(
            "/oauth/authorize",
            params={"response_type": "code", "client_id": client_id, "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"},
        )
        ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
        assert ticket is not None, page.text
        for origin in ("https://mcp.example.com:8443", "http://mcp.example.com", "https://evil.example", "null"):
            answer = browser.post("/oauth/consent", data={"ticket": ticket[1], "decision": "deny"}, headers={"Origin": origin})
            assert answer.status_code == 403, (origin, answer.text)


@pytest.mark.parametrize("public_url", ["https://mcp.example.com", "HTTPS://mcp.example.com", "Https://mcp.example.com"])
def test_an_https_public_url_gets_secure_host_only_cookies_whatever_the_scheme_case(public_url: str) -> None:
    # RFC 3986 §3.1: the scheme is case-insensitive; the cookies must be Secure and __Host- anyway.
    shim = OAuthShim(public_url=public_url, upstream=UPSTREAM, secret_keys=[SECRET_KEY])
    with TestClient(shim.app, base_url="https://mcp.example.com") as browser:
        client_id = browser.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
        page = browser.get(
            "/oauth/authorize",
            params={"response_type": "code", "client_id": client_id, "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"},
        )
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-mcp-shim-csrf="), cookie
    assert "; Secure" in cookie


# -- a client that goes away in the middle of its request body --------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/oauth/token", "application/x-www-form-urlencoded"),
        ("/oauth/revoke", "application/x-www-form-urlencoded"),
        ("/oauth/register", "application/json"),
        ("/oauth/consent", "application/x-www-form-urlencoded"),
    ],
)
def test_a_client_that_disconnects_mid_body_leaves_no_traceback_in_the_server_log(path: str, content_type: str) -> None:
    # Anyone can do this at will: an error-level "Exception in ASGI application" traceback per
    # request would flood the operator's logs (and alerts) with the shim's "crashes".
    server_errors = _Records()
    uvicorn_error = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate to the root
    uvicorn_error.addHandler(server_errors)
    try:
        with serve_asgi(make_kit().shim.app) as running:
            host, port = running.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))) as conn:
                conn.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                    "Content-Length: 1000\r\n\r\ngrant_type=authorization_code&code=".encode()
                )
            deadline = time.monotonic() + 10
            while not running.requests.lines and time.monotonic() < deadline:
                time.sleep(0.01)  # the request log gets its line once the app has returned
            assert running.requests.lines == [f"POST {path} -> no response"]
    finally:
        uvicorn_error.removeHandler(server_errors)
    assert [r.getMessage() for r in server_errors.records] == []


# -- a refresh that narrows the scope ---------------------------------------------------------


@pytest.mark.parametrize("issue_tokens", [False, True], ids=["passthrough", "issued-tokens"])
def test_a_refresh_that_narrows_the_scope_keeps_the_session_refreshable(issue_tokens: bool) -> None:
    # The shim adds the upstream's extra scopes (offline_access) to every login so that the IdP
    # issues refresh tokens; a client narrowing its scope on refresh (RFC 6749 §6) does not
    # know that. Were they dropped upstream, a rotating IdP would end the session: no new
    # refresh token, and the presented one spent.
    kit = make_kit(issue_tokens=issue_tokens)
    login = kit.login()
    tokens = kit.exchange(login).json()
    narrowed = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"], scope="openid profile")
    assert narrowed.status_code == 200, narrowed.text
    assert "refresh_token" in narrowed.json()
    again = kit.token(grant_type="refresh_token", refresh_token=narrowed.json()["refresh_token"], client_id=login["client_id"])
    assert again.status_code == 200, again.text

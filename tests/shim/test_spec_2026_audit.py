"""Spec audit (MCP 2026-07-28 / 2025-11-25 authorization and the RFCs they cite): the
authorization server and protected resource requirements the shim had broken, each pinned by
the behaviour the normative text asks for, over HTTP against the development IdP, next to the
behaviour around each fix that is right already (so that a fix that overshoots fails too)."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from mcp_oauth_shim.cimd import ClientMetadataDocuments
from mcp_oauth_shim.config import ConfigurationError

from .kit import CLIENT_REDIRECT, PUBLIC_URL, RESOURCE, Kit, make_kit, pkce_pair


def _page_error(text: str) -> str | None:
    found = re.search(r"\b(invalid_\w+|unsupported_\w+|access_denied)\b", text)
    return found.group(1) if found else None


# -- RFC 8707 §2: "The [resource] value ... MUST NOT include a fragment component." ------------
# "https://mcp.example.com/mcp#" has one (empty, but present: RFC 3986 §3.5).

FRAGMENTED_RESOURCES = [RESOURCE + "#", RESOURCE + "#section"]


@pytest.mark.parametrize("resource", FRAGMENTED_RESOURCES)
def test_a_resource_with_a_fragment_is_invalid_target_at_authorize(kit: Kit, resource: str) -> None:
    client_id = kit.register()["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, resource=resource))
    assert page.status_code == 400
    assert _page_error(page.text) == "invalid_target"


@pytest.mark.parametrize("resource", FRAGMENTED_RESOURCES)
def test_a_resource_with_a_fragment_is_invalid_target_at_the_token_endpoint(kit: Kit, resource: str) -> None:
    login = kit.login()
    answer = kit.token(
        grant_type="authorization_code",
        code=login["code"],
        redirect_uri=login["location"].split("?")[0],
        code_verifier=login["verifier"],
        client_id=login["client_id"],
        resource=resource,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"


# -- RFC 6749 §3.1 and §3.2 (OAuth 2.1 the same): "Parameters sent without a value MUST be
# treated as if they were omitted from the request." -----------------------------------------


@pytest.mark.parametrize("name", ["resource", "redirect_uri", "response_mode", "state", "scope"])
def test_an_authorization_request_parameter_without_a_value_counts_as_omitted(kit: Kit, name: str) -> None:
    client_id = kit.register()["client_id"]  # one redirect URI: redirect_uri may be omitted
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, **{name: ""}))
    assert page.status_code == 200, _page_error(page.text)


def test_a_state_without_a_value_is_not_echoed_to_the_client(kit: Kit) -> None:
    login = kit.login(state="")
    assert "state=" not in login["location"]


@pytest.mark.parametrize("name", ["resource", "redirect_uri", "scope"])
def test_a_token_request_parameter_without_a_value_counts_as_omitted(kit: Kit, name: str) -> None:
    login = kit.login(redirect_uri=None)  # no redirect_uri at authorize: none needed at token
    form = {"grant_type": "authorization_code", "code": login["code"], "code_verifier": login["verifier"], "client_id": login["client_id"]}
    answer = kit.token(**form, **{name: ""})
    assert answer.status_code == 200, answer.text


def test_basic_authentication_with_a_client_secret_parameter_without_a_value_is_one_method(kit: Kit) -> None:
    login = kit.login()
    basic = base64.b64encode(quote(login["client_id"], safe="").encode() + b":").decode()
    answer = kit.client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": login["code"], "code_verifier": login["verifier"],
              "redirect_uri": CLIENT_REDIRECT, "client_secret": ""},
        headers={"Authorization": "Basic " + basic},
    )
    assert answer.status_code == 200, answer.text




def test_a_revocation_with_basic_authentication_and_a_client_secret_parameter_without_a_value_is_one_method(kit: Kit) -> None:
    # RFC 7009 §2.1 authenticates the client as the token endpoint does (RFC 6749 §2.3, §3.2).
    login = kit.login()
    refresh_token = kit.exchange(login).json()["refresh_token"]
    basic = base64.b64encode(quote(login["client_id"], safe="").encode() + b":").decode()
    answer = kit.client.post(
        "/oauth/revoke", data={"token": refresh_token, "client_secret": ""}, headers={"Authorization": "Basic " + basic}
    )
    assert answer.status_code == 200, answer.text


# -- OAuth 2.1 §8.4.2 / RFC 8252 §7.3: "The authorization server MUST allow any port to be
# specified at the time of the request for loopback IP redirect URIs". An empty path and "/"
# stay one URI (RFC 3986 §6.2.3): VS Code registers and sends "http://127.0.0.1:<port>/" while
# operators list "http://127.0.0.1:33418" for it (docs/connect-clients.md).


def test_vs_code_loopback_redirect_matches_the_documented_static_allow_list() -> None:
    static = make_kit(registration="static", allowed_redirect_uris=["http://127.0.0.1:33418", "https://vscode.dev/redirect"])
    registered = static.client.post(
        "/oauth/register",
        json={"redirect_uris": ["https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"], "client_name": "Visual Studio Code"},
    )
    assert registered.status_code == 201, registered.text
    _, challenge = pkce_pair()
    params = static.authorize_params(registered.json()["client_id"], challenge, redirect_uri="http://127.0.0.1:51000/")
    assert static.client.get("/oauth/authorize", params=params).status_code == 200


# -- MCP 2026-07-28 "Refresh Tokens": "MCP Servers (Protected Resources) SHOULD NOT include
# offline_access in WWW-Authenticate scope or Protected Resource Metadata scopes_supported, as
# refresh tokens are not a resource requirement." The authorization server metadata keeps it
# (clients MAY ask for it when the AS lists it).


@pytest.fixture
def kit_offering_offline_access() -> Kit:
    return make_kit(scopes_supported=["openid", "profile", "offline_access"])


def test_protected_resource_metadata_does_not_advertise_offline_access(kit_offering_offline_access: Kit) -> None:
    document = kit_offering_offline_access.client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert document["scopes_supported"] == ["openid", "profile"]


def test_authorization_server_metadata_still_lists_offline_access(kit_offering_offline_access: Kit) -> None:
    document = kit_offering_offline_access.client.get("/.well-known/oauth-authorization-server").json()
    assert "offline_access" in document["scopes_supported"]


def test_the_401_challenge_does_not_ask_for_offline_access(kit_offering_offline_access: Kit) -> None:
    shim = kit_offering_offline_access.shim
    guarded = TestClient(shim.protect(PlainTextResponse("ok")), base_url=PUBLIC_URL)
    challenge = guarded.post("/mcp").headers["www-authenticate"]
    assert 'scope="openid profile"' in challenge


# -- MCP security considerations, "Localhost Redirect URI Risks": authorization servers SHOULD
# display additional warnings for localhost-only redirect URIs. Every host the registration
# policy accepts as loopback for plain http gets the warning, not only three spellings.

LOOPBACK_WARNING = "The answer goes to a program on this computer."


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:53682/callback", "http://localhost:53682/callback", "http://[::1]:53682/callback",
     "http://127.0.0.2:53682/callback", "http://app.localhost:53682/callback", "http://[::ffff:127.0.0.1]:53682/callback"],
)
def test_the_consent_page_warns_about_every_loopback_redirect_uri(kit: Kit, redirect_uri: str) -> None:
    client_id = kit.register(redirect_uris=[redirect_uri])["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, redirect_uri=redirect_uri))
    assert page.status_code == 200, _page_error(page.text)
    assert LOOPBACK_WARNING in page.text


def test_the_consent_page_does_not_warn_about_an_https_redirect_uri(kit: Kit) -> None:
    client_id = kit.register(redirect_uris=["https://app.example/cb"])["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, redirect_uri="https://app.example/cb"))
    assert LOOPBACK_WARNING not in page.text


# -- RFC 8414 §2: the issuer is "a URL that uses the "https" scheme and has no query or fragment
# components"; MCP security considerations: every authorization server endpoint over HTTPS.
# The public URL was checked; an explicit ``issuer=`` went out in metadata and ``iss`` unchecked.


@pytest.mark.parametrize(
    ("issuer", "problem"),
    [
        ("https://as.example/?tenant=1", "query"),
        ("https://as.example/tenant?", "query"),
        ("https://as.example/#top", "fragment"),
        ("http://as.example", "https"),
        ("as.example", "absolute"),
    ],
)
def test_an_issuer_that_rfc_8414_forbids_is_refused_at_start_up(issuer: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"issuer must .*{problem}"):
        make_kit(issuer=issuer)


@pytest.mark.parametrize("issuer", ["https://as.example", "https://as.example/tenant/", "http://127.0.0.1:8000"])
def test_an_issuer_rfc_8414_allows_is_served_as_given(issuer: str) -> None:
    assert make_kit(issuer=issuer).shim.context.issuer == issuer


# -- MCP 2026-07-28 client registration, Client ID Metadata Documents: "The metadata document
# MUST include at least the following properties: client_id, client_name, redirect_uris", and
# authorization servers "MUST validate the document structure is valid JSON and contains required
# fields". The consent page names the client by that name (MCP security best practices).

CIMD_CLIENT_ID = "http://127.0.0.1:9911/oauth/client.json"


def _kit_serving_document(document: dict[str, object]) -> Kit:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=document)

    documents = ClientMetadataDocuments(http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), allow_http_loopback=True)
    return make_kit(client_metadata_documents=documents)


@pytest.mark.parametrize("name", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_a_client_metadata_document_without_a_client_name_is_invalid_client(name: str | None) -> None:
    document: dict[str, object] = {"client_id": CIMD_CLIENT_ID, "redirect_uris": ["http://127.0.0.1/callback"]}
    if name is not None:
        document["client_name"] = name
    kit = _kit_serving_document(document)
    params = kit.authorize_params(CIMD_CLIENT_ID, pkce_pair()[1], redirect_uri="http://127.0.0.1:5000/callback")
    page = kit.client.get("/oauth/authorize", params=params)
    assert page.status_code == 400
    assert _page_error(page.text) == "invalid_client"
    assert "client_name" in page.text


# -- Pins of requirements the shim meets, that no other test names ------------------------------


@pytest.mark.parametrize(
    ("redirect_uri", "shown"),
    [("https://app.example/oauth/cb", "app.example"), ("http://127.0.0.1:53682/callback", "127.0.0.1:53682")],
)
def test_the_consent_page_shows_the_redirect_uri_host(kit: Kit, redirect_uri: str, shown: str) -> None:
    # MCP security considerations, Localhost Redirect URI Risks: "MUST clearly display the
    # redirect URI hostname during authorization".
    client_id = kit.register(redirect_uris=[redirect_uri])["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, redirect_uri=redirect_uri))
    assert f'It will receive the answer at <span class="host">{shown}</span>' in page.text


@pytest.mark.parametrize("resource", ["HTTP://127.0.0.1:8000/mcp", RESOURCE + "/"])
def test_a_resource_with_an_upper_case_scheme_or_a_trailing_slash_is_accepted(kit: Kit, resource: str) -> None:
    # MCP 2026-07-28 "Canonical Server URI": implementations SHOULD accept uppercase scheme and
    # host components (the test resource's host is an IP literal); the canonical form has no
    # trailing slash, and clients send either.
    client_id = kit.register()["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, resource=resource))
    assert page.status_code == 200, _page_error(page.text)

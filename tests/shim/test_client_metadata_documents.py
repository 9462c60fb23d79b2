"""URL client_ids (MCP 2025-11-25 CIMD) through the authorize endpoint and consent page."""

import html
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_oauth_shim.cimd import ClientMetadataDocuments

from .kit import PUBLIC_URL, Kit, make_kit, pkce_pair

CLIENT_ID = "http://127.0.0.1:9911/oauth/client.json"


def _documents(doc: dict) -> ClientMetadataDocuments:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=doc, headers={"Cache-Control": "max-age=600"})

    return ClientMetadataDocuments(http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), allow_http_loopback=True)


def _doc(**changes):
    return {
        "client_id": CLIENT_ID,
        "client_name": "Claude Code",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        **changes,
    }


def test_a_url_client_id_reaches_consent_with_its_publisher_shown():
    kit = make_kit(client_metadata_documents=_documents(_doc()))
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="http://localhost:51515/callback")
    page = kit.client.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    assert "Claude Code" in page.text
    assert "published by 127.0.0.1:9911" in page.text


def test_a_url_client_id_logs_in_end_to_end():
    kit = make_kit(client_metadata_documents=_documents(_doc(redirect_uris=["http://127.0.0.1:53682/callback"])))
    login = kit.login(client_id=CLIENT_ID)
    assert kit.exchange(login).status_code == 200


def test_redirect_uri_outside_the_document_is_refused():
    kit = make_kit(client_metadata_documents=_documents(_doc()))
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="https://evil.example/cb")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_document_whose_client_id_differs_is_refused():
    kit = make_kit(client_metadata_documents=_documents(_doc(client_id="http://127.0.0.1:9911/other.json")))
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="http://localhost:5/callback")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "invalid_client" in response.text


def test_metadata_says_whether_documents_are_accepted():
    assert make_kit().client.get("/.well-known/oauth-authorization-server").json()["client_id_metadata_document_supported"]
    off = make_kit(client_metadata_documents=False)
    assert off.client.get("/.well-known/oauth-authorization-server").json()["client_id_metadata_document_supported"] is False


# --- errors before consent are shown, not redirected (RFC 9700 §4.11.2) -------------------------


def test_bad_request_from_a_metadata_document_client_is_shown_not_redirected():
    kit = make_kit(client_metadata_documents=_documents(_doc()))
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="http://127.0.0.1:5555/callback", code_challenge=None)
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "code_challenge is required" in response.text


def test_deny_on_the_consent_page_returns_to_a_metadata_document_client():
    kit = make_kit(client_metadata_documents=_documents(_doc(redirect_uris=["http://127.0.0.1:53682/callback"])))
    response = kit.approve(kit.authorize_params(CLIENT_ID, pkce_pair()[1]), decision="deny")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["client-state-123"]
    assert query["iss"] == [PUBLIC_URL]


# --- malformed client_id URLs: a clear invalid_client at both endpoints, never a 5xx ----------


class _Recorder:
    """Transport and resolver that only record: a malformed client_id must reach neither."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.lookups: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(404)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return ["93.184.216.34"]


MALFORMED_CLIENT_ID_URLS = [
    # IPv6 brackets
    ("https://[zz]/client.json", "IPv6"),
    ("https://[]/client.json", "malformed host"),
    ("https://[::1/client.json", "malformed host"),
    ("https://::1]/client.json", "malformed host"),
    ("https://[::1]x/client.json", "malformed host"),
    ("https://[[::1]]/client.json", "malformed host"),
    ("https://[v1.fe]/client.json", "IPv6"),
    ("https://[fe80::1%25eth0]/client.json", "IPv6"),
    ("https://[2001:db8::1]:99999/client.json", "port"),
    # ports
    ("https://client.example:99999/client.json", "port"),
    ("https://client.example:65536/client.json", "port"),
    ("https://client.example:-1/client.json", "port"),
    ("https://client.example:+1/client.json", "port"),
    ("https://client.example:0/client.json", "port"),
    ("https://client.example:1a/client.json", "port"),
    ("https://client.example:443:443/client.json", "port"),
    ("https://client.example:" + "9" * 40 + "/client.json", "port"),
    # userinfo
    ("https://user@client.example/client.json", "username"),
    ("https://:@client.example/client.json", "username"),
    ("https://user:pw@[::1]/client.json", "username"),
    ("https://client.example%40evil.example/client.json", "DNS name"),
    # fragments
    ("https://client.example/client.json#", "fragment"),
    ("https://client.example/client.json#x", "fragment"),
    # non-ASCII, whitespace, controls
    ("https://clïent.example/client.json", "non-ASCII"),
    ("https://client.example/clïent.json", "non-ASCII"),
    ("https://client.example:\uff11/client.json", "non-ASCII"),
    ("https://client.example/\u2028", "non-ASCII"),
    ("https://client.example/a b", "whitespace"),
    ("https://client.example/\x00", "control"),
    ("https://client.example\t/client.json", "control"),
    # percent-encoding
    ("https://client.example/%zz", "percent-encoded"),
    ("https://client.example/%", "percent-encoded"),
    ("https://client.example/%4", "percent-encoded"),
    ("https://%63lient.example/client.json", "DNS name"),
    ("https://%5Bzz%5D/client.json", "DNS name"),
    ("https://client.example/%2e%2e/client.json", "'..'"),
    # length
    ("https://client.example/" + "a" * 2000, "longer"),
    ("https://" + "a" * 64 + ".example/client.json", "DNS name"),
    # no host, no path, wrong scheme
    ("https:///client.json", "no host"),
    ("https://:443/client.json", "no host"),
    ("https://client.example", "path"),
    ("http://client.example/client.json", "https"),
    ("http://[zz]/client.json", "https"),
]


def _kit_recording_fetches() -> tuple[Kit, _Recorder]:
    recorder = _Recorder()
    documents = ClientMetadataDocuments(
        http=httpx.AsyncClient(transport=httpx.MockTransport(recorder.handle)), resolver=recorder.resolve
    )
    return make_kit(client_metadata_documents=documents), recorder


@pytest.mark.parametrize(("client_id", "reason"), MALFORMED_CLIENT_ID_URLS)
def test_malformed_client_id_url_at_authorize_is_an_invalid_client_page(client_id, reason):
    kit, recorder = _kit_recording_fetches()
    params = kit.authorize_params(client_id, pkce_pair()[1])
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "<code>invalid_client</code>" in response.text
    assert html.escape(reason) in response.text
    assert recorder.requests == [] and recorder.lookups == []


@pytest.mark.parametrize(("client_id", "reason"), MALFORMED_CLIENT_ID_URLS)
def test_malformed_client_id_url_at_token_is_invalid_client(client_id, reason):
    kit, recorder = _kit_recording_fetches()
    response = kit.token(
        grant_type="authorization_code",
        code="not-a-code",
        client_id=client_id,
        redirect_uri="http://127.0.0.1:53682/callback",
        code_verifier="v" * 43,
    )
    assert response.status_code in (400, 401)
    body = response.json()
    assert body["error"] == "invalid_client"
    assert reason in body["error_description"]
    assert recorder.requests == [] and recorder.lookups == []


# --- malformed documents: invalid_client naming the field, at both endpoints, never a 5xx -----

BAD_URL_VALUES = [
    "https://[zz]/",
    "https://[::1/",
    "https://client.example:99999/",
    "https://client.example:-1/",
    "https://user@client.example/",
    "https://client.example/%zz",
    "https://exa\nmple.example/",
    "https://exa\x00mple.example/",
    "https://ex ample.example/",
    "https://ex\\ample.example/",
    "https://clïent.example/",
    "https://",
    "javascript:alert(1)",
    "ftp://client.example/",
    "https://client.example/" + "a" * 3000,
    7,
    ["https://client.example/"],
    {"href": "https://client.example/"},
    True,
]

MALFORMED_DOCUMENTS = [
    *[({"client_uri": value}, "client_uri") for value in BAD_URL_VALUES],
    *[({"logo_uri": value}, "logo_uri") for value in BAD_URL_VALUES],
    ({"client_name": 7}, "client_name"),
    ({"client_name": ["Claude"]}, "client_name"),
    ({"client_name": "n" * 201}, "client_name"),
    ({"client_name": "Claude\u202eedoC"}, "client_name"),
    ({"client_name": "Claude\nAdmin"}, "client_name"),
    ({"client_name": "Claude\x00"}, "client_name"),
    ({"token_endpoint_auth_method": ["none"]}, "token_endpoint_auth_method"),
    ({"token_endpoint_auth_method": {"m": "none"}}, "token_endpoint_auth_method"),
    ({"token_endpoint_auth_method": None}, "token_endpoint_auth_method"),
    ({"redirect_uris": "http://127.0.0.1/callback"}, "redirect_uris"),
    ({"redirect_uris": [["http://127.0.0.1/callback"]]}, "redirect_uris"),
    ({"redirect_uris": [{"uri": "http://127.0.0.1/callback"}]}, "redirect_uris"),
    ({"redirect_uris": [None]}, "redirect_uris"),
    ({"redirect_uris": ["https://[zz]/cb"]}, "redirect URI"),
    ({"redirect_uris": ["http://127.0.0.1:99999/callback"]}, "redirect URI"),
    ({"redirect_uris": ["http://127.0.0.1/call\x00back"]}, "redirect URI"),
    ({"grant_types": "authorization_code"}, "grant_types"),
    ({"grant_types": [7]}, "grant_types"),
    ({"response_types": [None]}, "response_types"),
    ({"application_type": 7}, "application_type"),
    ({"scope": 7}, "scope"),
    ({"scope": "s" * 3000}, "scope"),
    ({"client_id": 7}, "client_id"),
    ({"client_id": [CLIENT_ID]}, "client_id"),
    ({"client_id": {"url": CLIENT_ID}}, "client_id"),
]


def _kit_serving(body: bytes) -> Kit:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    documents = ClientMetadataDocuments(http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), allow_http_loopback=True)
    return make_kit(client_metadata_documents=documents)


def _body(changes: dict) -> bytes:
    return json.dumps(_doc(**changes)).encode()


@pytest.mark.parametrize(("changes", "field"), MALFORMED_DOCUMENTS, ids=lambda value: repr(value)[:60])
def test_malformed_document_at_authorize_is_an_invalid_client_page_naming_the_field(changes, field):
    kit = _kit_serving(_body(changes))
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="http://127.0.0.1:5555/callback")
    response = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "<code>invalid_client</code>" in response.text
    assert field in response.text


@pytest.mark.parametrize(("changes", "field"), MALFORMED_DOCUMENTS, ids=lambda value: repr(value)[:60])
def test_malformed_document_at_token_is_invalid_client_naming_the_field(changes, field):
    kit = _kit_serving(_body(changes))
    response = kit.token(
        grant_type="authorization_code",
        code="not-a-code",
        client_id=CLIENT_ID,
        redirect_uri="http://127.0.0.1:53682/callback",
        code_verifier="v" * 43,
    )
    assert response.status_code in (400, 401)
    body = response.json()
    assert body["error"] == "invalid_client"
    assert field in body["error_description"]


MALFORMED_BODIES = [
    (b"", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 2500 + b"]" * 2500, "not valid JSON"),
    (b'{"client_id": "' + CLIENT_ID.encode() + b'", "client_name": ' + b"[" * 2000 + b"]" * 2000 + b"}", "not valid JSON"),
    (b'{"client_id": 1' + b"0" * 4400 + b"}", "not valid JSON"),
    (b"[" * 3000 + b"]" * 3000, "larger than"),
    (b"null", "JSON object"),
    (b'"' + CLIENT_ID.encode() + b'"', "JSON object"),
    (b"[]", "JSON object"),
    (b'{"client_id": NaN}', "client_id"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED_BODIES, ids=lambda value: repr(value)[:40])
def test_malformed_document_body_is_invalid_client_at_both_endpoints(body, reason):
    kit = _kit_serving(body)
    params = kit.authorize_params(CLIENT_ID, pkce_pair()[1], redirect_uri="http://127.0.0.1:5555/callback")
    page = kit.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert page.status_code == 400 and "<code>invalid_client</code>" in page.text
    assert reason in page.text
    token = kit.token(grant_type="authorization_code", code="c", client_id=CLIENT_ID, code_verifier="v" * 43)
    assert token.status_code in (400, 401) and token.json()["error"] == "invalid_client"

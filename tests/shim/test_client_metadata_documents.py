"""URL client_ids (MCP 2025-11-25 CIMD) through the authorize endpoint and consent page."""

import httpx

from mcp_oauth_shim.cimd import ClientMetadataDocuments

from .kit import make_kit, pkce_pair

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

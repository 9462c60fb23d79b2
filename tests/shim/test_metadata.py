"""RFC 8414 / OIDC discovery / RFC 9728 documents: where they are served and what they say."""

import pytest

from mcp_oauth_shim import OAuthShim, Upstream

from .kit import IDP_ISSUER, PUBLIC_URL, RESOURCE, make_kit

AS_PATHS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
]
PRM_PATHS = ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]


@pytest.mark.parametrize("path", AS_PATHS)
def test_authorization_server_metadata_names_the_shim_as_issuer(kit, path):
    doc = kit.client.get(path).json()
    assert doc["issuer"] == PUBLIC_URL
    assert doc["authorization_endpoint"] == PUBLIC_URL + "/oauth/authorize"
    assert doc["token_endpoint"] == PUBLIC_URL + "/oauth/token"
    assert doc["registration_endpoint"] == PUBLIC_URL + "/oauth/register"


def test_metadata_advertises_s256_iss_and_public_clients_only(kit):
    doc = kit.client.get(AS_PATHS[0]).json()
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["token_endpoint_auth_methods_supported"] == ["none"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["client_id_metadata_document_supported"] is True


def test_metadata_lists_revocation_when_the_idp_has_it(kit):
    doc = kit.client.get(AS_PATHS[0]).json()
    assert doc["revocation_endpoint"] == PUBLIC_URL + "/oauth/revoke"


def test_metadata_validates_with_authlib():
    from authlib.oauth2 import rfc8414, rfc9207

    kit = make_kit()
    doc = rfc8414.AuthorizationServerMetadata(kit.client.get(AS_PATHS[0]).json())
    doc.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])


@pytest.mark.parametrize("path", PRM_PATHS)
def test_protected_resource_metadata_points_at_the_issuer_byte_for_byte(kit, path):
    prm = kit.client.get(path).json()
    issuer = kit.client.get(AS_PATHS[0]).json()["issuer"]
    assert prm["resource"] == RESOURCE
    assert prm["authorization_servers"] == [issuer]
    assert prm["bearer_methods_supported"] == ["header"]
    assert "openid" in prm["scopes_supported"]


def test_metadata_is_open_to_cors(kit):
    response = kit.client.get(AS_PATHS[0], headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = kit.client.options(
        PRM_PATHS[0], headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_metadata_is_cacheable(kit):
    assert "max-age" in kit.client.get(AS_PATHS[0]).headers["cache-control"]


def test_issuer_with_a_path_is_served_path_inserted_and_appended():
    from starlette.testclient import TestClient

    shim = OAuthShim(
        public_url="https://api.example.com/tenant",
        resource="https://api.example.com/tenant/mcp",
        upstream=Upstream.oidc(issuer=IDP_ISSUER, client_id="c", client_secret="s"),
        secret_keys=["x" * 40],
        client_metadata_documents=False,
    )
    paths = {r.path for r in shim.routes}
    for expected in (
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/tenant/mcp",
        "/tenant/oauth/authorize",
    ):
        assert expected in paths
    assert shim.resource_metadata_url == "https://api.example.com/.well-known/oauth-protected-resource/tenant/mcp"
    client = TestClient(shim.app, base_url="https://api.example.com")
    # The IdP is unreachable here: the document is still served (without revocation).
    doc = client.get("/.well-known/oauth-authorization-server/tenant").json()
    assert doc["issuer"] == "https://api.example.com/tenant"


def test_custom_metadata_is_served_verbatim_and_nothing_is_proxied():
    from starlette.testclient import TestClient

    custom = {
        "issuer": "https://tenant.auth0.example/",
        "authorization_endpoint": "https://tenant.auth0.example/authorize",
        "token_endpoint": "https://tenant.auth0.example/oauth/token",
        "jwks_uri": "https://tenant.auth0.example/.well-known/jwks.json",
        "scopes_supported": ["openid", "read:items"],
        "x-vendor": {"kept": True},
    }
    shim = OAuthShim(public_url=PUBLIC_URL, resource=RESOURCE, custom_metadata=custom)
    client = TestClient(shim.app, base_url=PUBLIC_URL)
    assert client.get("/.well-known/oauth-authorization-server").json() == custom
    prm = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert prm["authorization_servers"] == ["https://tenant.auth0.example/"]
    assert prm["scopes_supported"] == ["openid", "read:items"]
    assert client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}).status_code == 404

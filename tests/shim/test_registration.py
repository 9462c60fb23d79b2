"""RFC 7591 registration: stateless, public clients, never the upstream secret."""

import pytest

from mcp_oauth_shim.sealing import CLIENT

from .kit import CLIENT_REDIRECT, make_kit


def test_registration_answers_201_with_a_public_client(kit):
    response = kit.client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": "Cli"})
    assert response.status_code == 201
    body = response.json()
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    assert body["redirect_uris"] == [CLIENT_REDIRECT]
    assert body["client_name"] == "Cli"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"


def test_client_id_is_signed_and_carries_the_redirect_uris(kit):
    client_id = kit.register()["client_id"]
    data = kit.shim.context.sealer.unseal(CLIENT, client_id, max_age=60)
    assert data["r"] == [CLIENT_REDIRECT]


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none", "private_key_jwt"])
def test_clients_asking_for_a_secret_get_a_public_client_and_no_secret(kit, method):
    body = kit.register(
        redirect_uris=["https://claude.ai/api/mcp/auth_callback"], token_endpoint_auth_method=method
    )
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    assert kit.idp.client_secret not in str(body)


@pytest.mark.parametrize("application_type", ["native", "web"])
def test_application_type_is_echoed(kit, application_type):
    assert kit.register(application_type=application_type)["application_type"] == application_type


BAD_METADATA = [
    ({}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": "http://127.0.0.1/cb"}, "invalid_redirect_uri"),
    ({"redirect_uris": [123]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://a.example/cb#x"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://a.example/cb"] * 1 + [f"https://a.example/{i}" for i in range(30)]}, "invalid_redirect_uri"),
    ({"redirect_uris": [CLIENT_REDIRECT], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    # Machine grants are for operator-registered confidential clients only, never DCR clients.
    ({"redirect_uris": [CLIENT_REDIRECT], "grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata"),
    (
        {"redirect_uris": [CLIENT_REDIRECT], "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"]},
        "invalid_client_metadata",
    ),
    ({"redirect_uris": [CLIENT_REDIRECT], "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "grant_types": "authorization_code"}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "response_types": ["token"]}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "application_type": "service"}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "client_name": "x" * 500}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "client_name": ["a"]}, "invalid_client_metadata"),
    ({"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": 7}, "invalid_client_metadata"),
]


@pytest.mark.parametrize(("metadata", "error"), BAD_METADATA)
def test_bad_client_metadata_gets_rfc7591_errors(kit, metadata, error):
    response = kit.client.post("/oauth/register", json=metadata)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1,2]", b'"string"', b"\xff\xfe", b"{" * 5000, b"null"],
)
def test_malformed_registration_bodies_get_400_not_500(kit, raw):
    response = kit.client.post("/oauth/register", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


def test_oversized_registration_is_refused(kit):
    huge = {"redirect_uris": [CLIENT_REDIRECT], "client_name": "x", "junk": "y" * 100_000}
    response = kit.client.post("/oauth/register", json=huge)
    assert response.status_code == 400


def test_duplicate_redirect_uris_are_registered_once(kit):
    body = kit.register(redirect_uris=[CLIENT_REDIRECT, CLIENT_REDIRECT])
    assert body["redirect_uris"] == [CLIENT_REDIRECT]


def test_static_mode_hands_out_the_upstream_client_id_but_never_its_secret():
    kit = make_kit(registration="static", allowed_redirect_uris=["http://127.0.0.1/callback"])
    body = kit.register(redirect_uris=["http://127.0.0.1:4444/callback"])
    assert body["client_id"] == kit.idp.client_id
    assert "client_secret" not in body
    assert kit.idp.client_secret not in str(body)


def test_static_mode_refuses_redirect_uris_off_the_allow_list():
    kit = make_kit(registration="static", allowed_redirect_uris=["http://127.0.0.1/callback"])
    response = kit.client.post("/oauth/register", json={"redirect_uris": ["https://evil.example/cb"]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


REGISTRATION_JSON = b'{"redirect_uris": ["' + CLIENT_REDIRECT.encode() + b'"]}'


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/json ;charset=UTF-8"],
)
def test_registration_accepts_json_in_any_spelling_of_its_media_type(kit, content_type):
    response = kit.client.post("/oauth/register", content=REGISTRATION_JSON, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonp", "application/json-patch+json", ""],
)
def test_registration_in_another_media_type_is_refused_with_invalid_client_metadata(kit, content_type):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    response = kit.client.post("/oauth/register", content=REGISTRATION_JSON, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.headers["cache-control"] == "no-store"

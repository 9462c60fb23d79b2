"""The development IdP behaves like Auth0 towards the shim: discovery, PKCE, tokens, refresh."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.testclient import TestClient

from mcp_oauth_shim.dev_idp import DEMO_PASSWORD, DEMO_USERNAME, DevIdP

ISSUER = "http://127.0.0.1:9000"
CLIENT_ID = "shim"
SECRET = "s3cret-for-tests"
REDIRECT = "http://127.0.0.1:8000/oauth/callback"
API = "http://127.0.0.1:8000/mcp"


def make_idp(**overrides: Any) -> DevIdP:
    options: dict[str, Any] = dict(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=[REDIRECT],
        audiences=[API], auto_approve=True,
    )
    options.update(overrides)
    return DevIdP(**options)


@pytest.fixture(scope="module")
def idp() -> DevIdP:
    return make_idp()  # RSA key generation is the slow part: one IdP per module


@pytest.fixture
def client(idp: DevIdP) -> Iterator[TestClient]:
    with TestClient(idp.app, base_url=ISSUER, follow_redirects=False) as c:
        yield c


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(client: TestClient, challenge: str | None, **params: str) -> Any:
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "st",
             "scope": "openid profile offline_access", "resource": API}
    if challenge is not None:
        query.update(code_challenge=challenge, code_challenge_method="S256")
    query.update(params)
    return client.get("/authorize", params={k: v for k, v in query.items() if v != ""})


def redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(client: TestClient, **params: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    return redirect_params(authorize(client, challenge, **params))["code"], verifier


def exchange(client: TestClient, code: str, verifier: str, **extra: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            "client_id": CLIENT_ID, "client_secret": SECRET, **extra}
    return client.post("/oauth/token", data=data)


def tokens(client: TestClient, **params: str) -> dict[str, Any]:
    code, verifier = get_code(client, **params)
    response = exchange(client, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: TestClient, refresh_token: str, **extra: str) -> Any:
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                             "client_id": CLIENT_ID, "client_secret": SECRET, **extra})


def claims(client: TestClient, access_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    return jwt.decode(access_token, keys, algorithms=["RS256"]).claims


# -- discovery ---------------------------------------------------------------------------


def test_discovery_issuer_is_exactly_the_configured_one(client: TestClient) -> None:
    assert client.get("/.well-known/openid-configuration").json()["issuer"] == ISSUER


def test_discovery_keeps_a_trailing_slash_issuer_byte_for_byte() -> None:
    idp = make_idp(issuer=ISSUER + "/")
    with TestClient(idp.app, base_url=ISSUER) as c:
        meta = c.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == ISSUER + "/"
    assert meta["token_endpoint"] == ISSUER + "/oauth/token"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("authorization_endpoint", ISSUER + "/authorize"),
        ("token_endpoint", ISSUER + "/oauth/token"),
        ("jwks_uri", ISSUER + "/.well-known/jwks.json"),
        ("revocation_endpoint", ISSUER + "/oauth/revoke"),
        ("code_challenge_methods_supported", ["S256"]),
        ("response_types_supported", ["code"]),
        ("token_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_post"]),
        ("authorization_response_iss_parameter_supported", False),
    ],
)
def test_discovery_advertises(client: TestClient, field: str, value: Any) -> None:
    assert client.get("/.well-known/openid-configuration").json()[field] == value


def test_discovery_has_no_registration_endpoint_like_auth0(client: TestClient) -> None:
    assert "registration_endpoint" not in client.get("/.well-known/openid-configuration").json()


def test_jwks_holds_only_public_keys(client: TestClient) -> None:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


def test_creation_logs_a_development_only_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.dev_idp"):
        make_idp()
    assert any("Never use it in production" in r.getMessage() for r in caplog.records)


# -- authorization endpoint ----------------------------------------------------------------


def test_login_page_has_the_development_banner_and_the_demo_account() -> None:
    idp = make_idp(auto_approve=False)
    with TestClient(idp.app, base_url=ISSUER) as c:
        page = authorize(c, pkce()[1])
    assert page.status_code == 200
    assert "DEVELOPMENT IdP" in page.text and "Never use it in production" in page.text
    assert f'value="{DEMO_USERNAME}"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_form_login_then_issues_a_code_and_remembers_the_session() -> None:
    idp = make_idp(auto_approve=False)
    with TestClient(idp.app, base_url=ISSUER, follow_redirects=False) as c:
        first = authorize(c, pkce()[1])
        query = first.text.split('name="authorize_query" value="')[1].split('"')[0].replace("&amp;", "&")
        login = c.post("/login", data={"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "authorize_query": query})
        assert login.status_code == 303 and login.headers["location"].startswith("/authorize?")
        assert "code" in redirect_params(c.get(login.headers["location"]))
        assert "code" in redirect_params(authorize(c, pkce()[1]))  # second time: no form


def test_wrong_password_shows_the_form_again_with_401() -> None:
    idp = make_idp(auto_approve=False)
    with TestClient(idp.app, base_url=ISSUER, follow_redirects=False) as c:
        response = c.post("/login", data={"username": DEMO_USERNAME, "password": "nope", "authorize_query": "a=b"})
    assert response.status_code == 401 and "Wrong username or password" in response.text
    assert "dev_idp_session" not in response.cookies


def test_code_redirect_carries_state_and_no_iss_by_default(client: TestClient) -> None:
    params = redirect_params(authorize(client, pkce()[1]))
    assert params["state"] == "st" and "iss" not in params


def test_send_iss_adds_rfc9207_iss_to_the_redirect() -> None:
    idp = make_idp(send_iss=True)
    with TestClient(idp.app, base_url=ISSUER, follow_redirects=False) as c:
        assert redirect_params(authorize(c, pkce()[1]))["iss"] == ISSUER
        assert redirect_params(authorize(c, None))["iss"] == ISSUER  # error redirects too


@pytest.mark.parametrize(
    ("params", "with_challenge", "error"),
    [
        ({}, False, "invalid_request"),  # PKCE missing
        ({"code_challenge_method": "plain"}, True, "invalid_request"),  # plain refused
        ({"code_challenge_method": ""}, True, "invalid_request"),  # method omitted = plain
        ({"resource": "https://other.example/api"}, True, "invalid_target"),
        ({"resource": "", "audience": "https://other.example/api"}, True, "invalid_target"),
        ({"audience": "https://other.example/api"}, True, "invalid_target"),  # two different targets
        ({"response_type": "token"}, True, "unsupported_response_type"),
    ],
)
def test_authorize_errors_go_back_to_the_client(client: TestClient, params: dict[str, str],
                                                with_challenge: bool, error: str) -> None:
    response = authorize(client, pkce()[1] if with_challenge else None, **params)
    assert redirect_params(response)["error"] == error


@pytest.mark.parametrize(
    "redirect_uri",
    [REDIRECT + "/", REDIRECT + "?x=1", "http://127.0.0.1:8001/oauth/callback", "https://evil.example/cb"],
)
def test_unregistered_redirect_uri_is_refused_without_redirecting(client: TestClient, redirect_uri: str) -> None:
    response = authorize(client, pkce()[1], redirect_uri=redirect_uri)
    assert response.status_code == 400 and "location" not in response.headers


def test_unknown_client_is_refused_without_redirecting(client: TestClient) -> None:
    response = authorize(client, pkce()[1], client_id="someone-else")
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"


# -- token endpoint ------------------------------------------------------------------------


def test_access_token_is_an_rs256_jwt_bound_to_the_requested_resource(client: TestClient) -> None:
    token = tokens(client)
    c = claims(client, token["access_token"])
    assert jwt.decode(token["access_token"], KeySet.import_key_set(
        client.get("/.well-known/jwks.json").json())).header["alg"] == "RS256"
    assert (c["iss"], c["aud"], c["sub"]) == (ISSUER, API, DEMO_USERNAME)
    assert c["scope"] == "openid profile offline_access" and c["exp"] > c["iat"]
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600


def test_auth0_style_audience_parameter_sets_aud(client: TestClient) -> None:
    token = tokens(client, resource="", audience=API)
    assert claims(client, token["access_token"])["aud"] == API


def test_without_a_resource_the_token_is_for_the_client_itself(client: TestClient) -> None:
    token = tokens(client, resource="")
    assert claims(client, token["access_token"])["aud"] == CLIENT_ID


def test_openid_scope_adds_an_id_token_for_the_client(client: TestClient) -> None:
    token = tokens(client, nonce="n-123")
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    id_claims = jwt.decode(token["id_token"], keys).claims
    assert (id_claims["iss"], id_claims["aud"], id_claims["nonce"]) == (ISSUER, [CLIENT_ID], "n-123")


def test_unknown_scopes_are_dropped_like_auth0(client: TestClient) -> None:
    token = tokens(client, scope="openid admin:everything")
    assert token["scope"] == "openid"


def test_client_secret_basic_is_accepted(client: TestClient) -> None:
    code, verifier = get_code(client)
    response = client.post("/oauth/token", auth=(CLIENT_ID, SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),  # authlib answers 401 when basic is allowed
        ({"client_secret": ""}, 401, "invalid_client"),  # no public clients
        ({"code_verifier": "x" * 43}, 400, "invalid_grant"),  # PKCE mismatch
        ({"code_verifier": ""}, 400, "invalid_request"),  # PKCE verifier missing
        ({"redirect_uri": REDIRECT + "/"}, 400, "invalid_grant"),
        ({"code": "forged"}, 400, "invalid_grant"),
        ({"resource": "https://other.example/api"}, 400, "invalid_target"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_request_is_refused(client: TestClient, change: dict[str, str], status: int, error: str) -> None:
    code, verifier = get_code(client)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            "client_id": CLIENT_ID, "client_secret": SECRET}
    data.update(change)
    response = client.post("/oauth/token", data={k: v for k, v in data.items() if v != ""})
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_code_works_once(client: TestClient) -> None:
    code, verifier = get_code(client)
    assert exchange(client, code, verifier).status_code == 200
    assert exchange(client, code, verifier).json()["error"] == "invalid_grant"


def test_same_resource_at_the_token_endpoint_is_accepted(client: TestClient) -> None:
    code, verifier = get_code(client)
    assert exchange(client, code, verifier, resource=API).status_code == 200


# -- refresh -------------------------------------------------------------------------------


def test_refresh_returns_a_new_access_and_refresh_token_with_the_same_audience(client: TestClient) -> None:
    first = tokens(client)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert claims(client, body["access_token"])["aud"] == API


def test_refresh_token_rotation_refuses_the_used_one(client: TestClient) -> None:
    first = tokens(client)
    assert refresh(client, first["refresh_token"]).status_code == 200
    assert refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_no_refresh_token_without_offline_access(client: TestClient) -> None:
    assert "refresh_token" not in tokens(client, scope="openid profile")


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"resource": "https://other.example/api"}, "invalid_target"),
        ({"scope": "openid email"}, "invalid_scope"),  # more than was granted
    ],
)
def test_refresh_is_refused(client: TestClient, extra: dict[str, str], error: str) -> None:
    assert refresh(client, tokens(client)["refresh_token"], **extra).json()["error"] == error


def test_revoked_refresh_token_stops_working(client: TestClient) -> None:
    token = tokens(client)["refresh_token"]
    revoked = client.post("/oauth/revoke", auth=(CLIENT_ID, SECRET), data={"token": token})
    assert revoked.status_code == 200
    assert refresh(client, token).json()["error"] == "invalid_grant"


# -- userinfo ------------------------------------------------------------------------------


def test_userinfo_answers_for_an_access_token(client: TestClient) -> None:
    access = tokens(client)["access_token"]
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert info.json() == {"sub": DEMO_USERNAME, "name": "Demo User"}


def test_userinfo_refuses_a_foreign_token(client: TestClient) -> None:
    info = client.get("/userinfo", headers={"Authorization": "Bearer not.a.jwt"})
    assert info.status_code == 401


@pytest.mark.parametrize(
    "claims",
    [{}, {"sub": 42}, {"sub": DEMO_USERNAME, "scope": ["profile"]}],
    ids=["without sub", "sub not a string", "scope not a string"],
)
def test_userinfo_refuses_its_own_signature_over_unusable_claims(
    idp: DevIdP, client: TestClient, claims: dict[str, Any]
) -> None:
    token = jwt.encode({"alg": "RS256"}, {"iss": ISSUER, "exp": 4_000_000_000, **claims}, idp.server.keys)
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert (info.status_code, info.headers["www-authenticate"]) == (401, 'Bearer error="invalid_token"')


# -- serving -------------------------------------------------------------------------------


def test_listens_on_loopback_unless_told_otherwise(idp: DevIdP) -> None:
    assert idp.uvicorn_server().config.host == "127.0.0.1"


@pytest.mark.parametrize("redirect_uri", ['http://127.0.0.1/"', "http://127.0.0.1/\\"])
def test_characters_authlib_cannot_echo_give_400_not_500(client: TestClient, redirect_uri: str) -> None:
    response = authorize(client, pkce()[1], redirect_uri=redirect_uri)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_redirect_uri_may_be_omitted_at_both_ends_with_one_registered(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = redirect_params(authorize(client, challenge, redirect_uri=""))["code"]
    response = client.post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                 "code_verifier": verifier, "client_id": CLIENT_ID,
                                                 "client_secret": SECRET})
    assert response.status_code == 200, response.text


def test_sign_ins_are_bounded_the_oldest_forgotten_first() -> None:
    from mcp_oauth_shim.dev_idp.app import MAX_SESSIONS

    idp = DevIdP(issuer="http://127.0.0.1:9000", redirect_uris=["http://127.0.0.1:8000/cb"])
    client = TestClient(idp.app, base_url="http://127.0.0.1:9000")
    first = None
    for _ in range(MAX_SESSIONS + 1):
        response = client.post("/login", data={"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "authorize_query": "x=1"},
                               follow_redirects=False)
        first = first or response.cookies.get("dev_idp_session")
    assert len(idp._sessions) == MAX_SESSIONS
    assert first not in idp._sessions

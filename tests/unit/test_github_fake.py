"""The fake GitHub answers as GitHub documents it, so tests of the shim can rely on it."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.upstream import UpstreamClient
from tests.peers.github_fake import FakeGitHub, GitHubUser, _s256, run_github_fake

CALLBACK = "http://127.0.0.1:9/oauth/callback"
VERIFIER = "v" * 43
JSON = {"Accept": "application/json"}


def authorize(github: FakeGitHub, client: TestClient, **params: str) -> dict[str, str]:
    query = {"client_id": github.client_id, "redirect_uri": CALLBACK, "scope": "read:user user:email", "state": "xyz"}
    response = client.get("/login/oauth/authorize", params=query | params, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {"_target": location.split("?")[0]} | {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(github: FakeGitHub, client: TestClient, code: str, headers=JSON, **form: str) -> httpx.Response:
    body = {"client_id": github.client_id, "client_secret": github.client_secret, "code": code, "redirect_uri": CALLBACK}
    return client.post("/login/oauth/access_token", data=body | form, headers=headers)


def login(github: FakeGitHub, client: TestClient) -> dict:
    code = authorize(github, client, code_challenge=_s256(VERIFIER), code_challenge_method="S256")["code"]
    return exchange(github, client, code, code_verifier=VERIFIER).json()


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub(callback_url=CALLBACK)


@pytest.fixture
def client(github: FakeGitHub) -> TestClient:
    return TestClient(github.app, base_url="http://127.0.0.1")


def test_authorize_redirects_back_with_code_and_state_and_no_iss(github: FakeGitHub, client: TestClient) -> None:
    answer = authorize(github, client)
    assert (answer["_target"], answer["state"], len(answer["code"]), "iss" in answer) == (CALLBACK, "xyz", 20, False)


def test_oauth_app_token_is_json_with_comma_separated_scopes_and_no_expiry(github: FakeGitHub, client: TestClient) -> None:
    token = login(github, client)
    assert set(token) == {"access_token", "token_type", "scope"}
    assert (token["access_token"][:4], token["token_type"], token["scope"]) == ("gho_", "bearer", "read:user,user:email")


def test_token_answer_is_form_encoded_without_accept_json(github: FakeGitHub, client: TestClient) -> None:
    response = exchange(github, client, authorize(github, client)["code"], headers={})
    assert response.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(response.text)["token_type"] == ["bearer"]


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        ({"client_secret": "wrong"}, "incorrect_client_credentials"),
        ({"code": "0" * 20}, "bad_verification_code"),
        ({"redirect_uri": CALLBACK + "/elsewhere"}, "redirect_uri_mismatch"),
        ({"code_verifier": "w" * 43}, "bad_verification_code"),
    ],
    ids=["bad-secret", "unknown-code", "other-redirect-uri", "pkce-mismatch"],
)
def test_token_errors_come_with_status_200(github: FakeGitHub, client: TestClient, tamper: dict, error: str) -> None:
    code = authorize(github, client, code_challenge=_s256(VERIFIER))["code"]
    form = {"code": code, "code_verifier": VERIFIER} | tamper
    response = exchange(github, client, form.pop("code"), **form)
    body = response.json()
    assert (response.status_code, body["error"], set(body)) == (200, error, {"error", "error_description", "error_uri"})


def test_a_code_works_once(github: FakeGitHub, client: TestClient) -> None:
    code = authorize(github, client)["code"]
    exchange(github, client, code)
    assert exchange(github, client, code).json()["error"] == "bad_verification_code"


def test_redirect_uri_outside_the_callback_goes_to_the_callback_with_an_error(github: FakeGitHub, client: TestClient) -> None:
    answer = authorize(github, client, redirect_uri="http://127.0.0.1:10/oauth/callback")
    assert (answer["_target"], answer["error"], answer["state"]) == (CALLBACK, "redirect_uri_mismatch", "xyz")


def test_denied_authorization_is_access_denied() -> None:
    github = FakeGitHub(callback_url=CALLBACK, deny=True)
    answer = authorize(github, TestClient(github.app, base_url="http://127.0.0.1"))
    assert (answer["error"], answer["state"]) == ("access_denied", "xyz")


def test_expiring_tokens_come_with_a_refresh_token() -> None:
    github = FakeGitHub(callback_url=CALLBACK, expiring_tokens=True)
    token = login(github, TestClient(github.app, base_url="http://127.0.0.1"))
    assert (token["access_token"][:4], token["refresh_token"][:4], token["expires_in"], token["scope"]) == (
        "ghu_",
        "ghr_",
        28800,
        "",
    )
    assert token["refresh_token_expires_in"] > token["expires_in"]


def test_refresh_rotates_and_retires_the_old_pair() -> None:
    github = FakeGitHub(callback_url=CALLBACK, expiring_tokens=True)
    client = TestClient(github.app, base_url="http://127.0.0.1")
    first = login(github, client)
    form = {"client_id": github.client_id, "client_secret": github.client_secret, "grant_type": "refresh_token"}
    second = client.post("/login/oauth/access_token", data=form | {"refresh_token": first["refresh_token"]}, headers=JSON).json()
    again = client.post("/login/oauth/access_token", data=form | {"refresh_token": first["refresh_token"]}, headers=JSON)
    old_user = client.get("/user", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert second["refresh_token"] != first["refresh_token"]
    assert (again.status_code, again.json()["error"], old_user.status_code) == (200, "bad_refresh_token", 401)


def test_user_api_returns_the_documented_user(github: FakeGitHub, client: TestClient) -> None:
    token = login(github, client)["access_token"]
    response = client.get("/user", headers={"Authorization": f"Bearer {token}"})
    user = response.json()
    assert {"login", "id", "node_id", "name", "email", "avatar_url", "html_url", "type"} <= set(user)
    assert (user["login"], user["id"], response.headers["x-oauth-scopes"]) == ("octocat", 583231, "read:user, user:email")


def test_private_email_is_null_on_user_and_listed_on_user_emails() -> None:
    user = GitHubUser(email=None)
    github = FakeGitHub(callback_url=CALLBACK, user=user)
    client = TestClient(github.app, base_url="http://127.0.0.1")
    headers = {"Authorization": f"Bearer {login(github, client)['access_token']}"}
    assert client.get("/user", headers=headers).json()["email"] is None
    assert client.get("/user/emails", headers=headers).json() == [
        {"email": "octocat@github.com", "verified": True, "primary": True, "visibility": "public"}
    ]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(None, "Requires authentication"), ("Bearer gho_unknown", "Bad credentials")],
    ids=["no-token", "unknown-token"],
)
def test_user_api_refuses_without_a_valid_token(client: TestClient, authorization: str | None, message: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/user", headers=headers)
    assert (response.status_code, response.json()["message"]) == (401, message)


def test_user_emails_needs_the_user_email_scope(github: FakeGitHub, client: TestClient) -> None:
    code = authorize(github, client, scope="read:user")["code"]
    token = exchange(github, client, code).json()["access_token"]
    assert client.get("/user/emails", headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_shim_token_post_gets_json_from_the_served_fake() -> None:
    """The shim's token POST (pooled, Accept: application/json) reads GitHub's answer as JSON."""
    with run_github_fake(FakeGitHub(callback_url=CALLBACK)) as (github, running):
        code = authorize(github, TestClient(github.app, base_url=running.url))["code"]
        upstream = Upstream.github(github.client_id, github.client_secret, **github.upstream_options())

        async def post() -> tuple[int, dict]:
            client = UpstreamClient(upstream)
            try:
                return await client.post_form(github.token_endpoint, {"code": code, "redirect_uri": CALLBACK})
            finally:
                await client.aclose()

        status, body = asyncio.run(post())
    assert (status, body["token_type"], body["scope"]) == (200, "bearer", "read:user,user:email")

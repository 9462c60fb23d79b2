"""Issued-token mode with the GitHub preset, against the documented-response GitHub stand-in
(tests/peers/github_fake.py) in process: the shim learns the user from GitHub's REST API and
issues its own tokens; GitHub's tokens never reach the client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from tests.peers.github_fake import FakeGitHub, GitHubUser
from tests.shim.kit import PUBLIC_URL, RESOURCE, SECRET_KEY, Kit

GITHUB_BASE = "http://127.0.0.1:9400"


def github_kit(**github_options: Any) -> tuple[Kit, FakeGitHub]:
    github = FakeGitHub(callback_url=PUBLIC_URL + "/oauth/callback", base_url=GITHUB_BASE, **github_options)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=github.app), base_url=GITHUB_BASE)
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=Upstream.github(github.client_id, github.client_secret, **github.upstream_options()),
        secret_keys=[SECRET_KEY],
        http_client=http,
    )
    kit = Kit(
        idp=github,  # type: ignore[arg-type]
        shim=shim,
        client=TestClient(shim.app, base_url=PUBLIC_URL),
        idp_client=TestClient(github.app, base_url=GITHUB_BASE),
    )
    return kit, github


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def signed_in(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    login = kit.login()
    answer = kit.exchange(login)
    assert answer.status_code == 200, answer.text
    return login, answer.json()


def refresh(kit: Kit, login: dict[str, Any], refresh_token: str) -> httpx.Response:
    return kit.token(grant_type="refresh_token", refresh_token=refresh_token, client_id=login["client_id"])


def test_github_preset_issues_tokens_by_default() -> None:
    kit, _ = github_kit()
    assert kit.shim.issue_tokens is True


def test_github_login_names_the_user_by_numeric_id() -> None:
    kit, github = github_kit()
    _, body = signed_in(kit)
    claims = claims_of(body["access_token"])
    assert claims["sub"] == str(github.user.id)
    assert claims["preferred_username"] == github.user.login
    assert claims["aud"] == RESOURCE and claims["iss"] == PUBLIC_URL


def test_github_oauth_app_token_without_expiry_still_gets_the_shims_lifetime() -> None:
    kit, _ = github_kit()
    _, body = signed_in(kit)
    assert body["expires_in"] == 3600
    assert "refresh_token" in body


def test_github_token_never_reaches_the_client_but_tools_can_open_it() -> None:
    kit, github = github_kit()
    _, body = signed_in(kit)
    (github_token,) = github._tokens
    assert github_token not in json.dumps(body)
    access = asyncio.run(kit.shim.verifier.authenticate(body["access_token"]))
    assert access.upstream_access_token() == github_token  # type: ignore[attr-defined]


def test_refresh_without_a_github_refresh_token_rechecks_the_user() -> None:
    kit, _ = github_kit()
    login, body = signed_in(kit)
    renewed = refresh(kit, login, body["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["refresh_token"] != body["refresh_token"]
    assert claims_of(renewed.json()["access_token"])["sub"] == claims_of(body["access_token"])["sub"]


def test_refresh_after_the_github_token_was_revoked_is_invalid_grant() -> None:
    kit, github = github_kit()
    login, body = signed_in(kit)
    github._tokens.clear()  # the user revoked the app at github.com/settings/applications
    answer = refresh(kit, login, body["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_github_app_refresh_redeems_and_rotates_githubs_refresh_token() -> None:
    kit, github = github_kit(expiring_tokens=True)
    login, body = signed_in(kit)
    (first_github_refresh,) = github._refresh
    renewed = refresh(kit, login, body["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert first_github_refresh not in github._refresh  # redeemed at GitHub, which rotated it
    assert len(github._refresh) == 1
    again = refresh(kit, login, renewed.json()["refresh_token"])
    assert again.status_code == 200, again.text


def test_github_bad_refresh_token_answered_with_200_is_invalid_grant() -> None:
    kit, github = github_kit(expiring_tokens=True)
    login, body = signed_in(kit)
    github._refresh.clear()  # GitHub no longer knows it: answers 200 {"error": "bad_refresh_token"}
    answer = refresh(kit, login, body["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_github_bad_verification_code_answered_with_200_is_invalid_grant() -> None:
    kit, github = github_kit()
    login = kit.login()
    github._codes.clear()  # expired or already used at GitHub
    answer = kit.exchange(login)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_github_refusing_the_shims_credentials_is_server_error() -> None:
    kit, github = github_kit()
    login = kit.login()
    object.__setattr__(github, "client_secret", "changed-at-github")
    answer = kit.exchange(login)
    assert answer.status_code == 502
    assert answer.json()["error"] == "server_error"


@pytest.mark.parametrize("email", [None, "octocat@github.com"], ids=["hidden-email", "public-email"])
def test_github_email_reaches_the_token_either_way(email: str | None) -> None:
    kit, _ = github_kit(user=GitHubUser(email=email))
    _, body = signed_in(kit)
    assert claims_of(body["access_token"])["email"] == "octocat@github.com"


def test_a_hidden_email_survives_the_refresh_recheck() -> None:
    kit, _ = github_kit(user=GitHubUser(email=None))
    login, body = signed_in(kit)
    renewed = refresh(kit, login, body["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert claims_of(renewed.json()["access_token"])["email"] == "octocat@github.com"

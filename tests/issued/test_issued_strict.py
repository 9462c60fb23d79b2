"""Issued-token mode with strict mode: the shim's own refresh tokens rotate in families, and a
reused one revokes its family (RFC 9700 §4.14.2), as the passthrough refresh tokens do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.strict import StrictMode
from tests.peers.github_fake import FakeGitHub
from tests.shim.kit import PUBLIC_URL, RESOURCE, SECRET_KEY, Kit, make_kit

GITHUB_BASE = "http://127.0.0.1:9400"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def strict_issued_kit() -> Kit:
    return make_kit(issue_tokens=True, strict=StrictMode.in_memory())


def login(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    started = kit.login()
    answer = kit.exchange(started)
    assert answer.status_code == 200, answer.text
    return started, answer.json()


def refresh(kit: Kit, started: dict[str, Any], token: str) -> Any:
    return kit.token(grant_type="refresh_token", refresh_token=token, client_id=started["client_id"])


def test_each_refresh_rotates_the_issued_refresh_token() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    second = refresh(kit, started, first["refresh_token"])
    assert second.status_code == 200, second.text
    third = refresh(kit, started, second.json()["refresh_token"])
    assert third.status_code == 200, third.text


def test_a_reused_issued_refresh_token_revokes_its_family() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    newer = refresh(kit, started, first["refresh_token"]).json()["refresh_token"]
    reused = refresh(kit, started, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # The legitimate holder's newer token belongs to the revoked family too.
    assert refresh(kit, started, newer).json()["error"] == "invalid_grant"


def test_revoking_an_issued_refresh_token_revokes_its_family() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    newer = refresh(kit, started, first["refresh_token"]).json()["refresh_token"]
    revoked = kit.client.post(
        "/oauth/revoke", data={"token": newer, "token_type_hint": "refresh_token", "client_id": started["client_id"]}
    )
    assert revoked.status_code == 200
    assert refresh(kit, started, newer).json()["error"] == "invalid_grant"



class GitHubUserAPIOutage(httpx.AsyncBaseTransport):
    """The GitHub stand-in in process; while ``failing``, its user API answers 502."""

    def __init__(self, github: FakeGitHub) -> None:
        self.inner = httpx.ASGITransport(app=github.app)
        self.failing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failing and request.url.path == "/user":
            return httpx.Response(502, text="<html>Bad gateway</html>", headers={"content-type": "text/html"})
        return await self.inner.handle_async_request(request)


def test_a_refresh_whose_github_recheck_failed_at_github_can_be_retried_with_the_same_token() -> None:
    github = FakeGitHub(callback_url=PUBLIC_URL + "/oauth/callback", base_url=GITHUB_BASE)
    outage = GitHubUserAPIOutage(github)
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=Upstream.github(github.client_id, github.client_secret, **github.upstream_options()),
        secret_keys=[SECRET_KEY],
        http_client=httpx.AsyncClient(transport=outage, base_url=GITHUB_BASE),
        strict=StrictMode.in_memory(),
    )
    kit = Kit(
        idp=github,  # type: ignore[arg-type]
        shim=shim,
        client=TestClient(shim.app, base_url=PUBLIC_URL),
        idp_client=TestClient(github.app, base_url=GITHUB_BASE),
    )
    started, first = login(kit)
    outage.failing = True
    failed = refresh(kit, started, first["refresh_token"])
    outage.failing = False

    retried = refresh(kit, started, first["refresh_token"])
    assert retried.status_code == 200, retried.text
    following = refresh(kit, started, retried.json()["refresh_token"])

    assert failed.status_code == 502, failed.text
    assert following.status_code == 200, following.text

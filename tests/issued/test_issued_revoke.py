"""POST /oauth/revoke in issued-token mode: the IdP's refresh token inside the shim's is
revoked at the IdP; the shim's access tokens are accepted and stay valid until they expire."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.issued.test_issued_login import IdPAnswers
from tests.shim.kit import IDP_ISSUER, Kit, make_kit
from tests.shim.test_revoke import IdPRequests

REVOCATION_PATH = "/oauth/revoke"


def signed_in(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    login = kit.login()
    answer = kit.exchange(login)
    assert answer.status_code == 200, answer.text
    return login, answer.json()


def revoke(kit: Kit, token: str, client_id: str, **extra: str) -> httpx.Response:
    return kit.client.post(REVOCATION_PATH, data={"token": token, "client_id": client_id, **extra})


def test_revoking_the_shims_refresh_token_revokes_the_idps_and_ends_refresh() -> None:
    kit = make_kit(issue_tokens=True)
    counted = IdPRequests(kit)
    login, tokens = signed_in(kit)
    assert revoke(kit, tokens["refresh_token"], login["client_id"]).status_code == 200
    assert counted.revocations == 1
    again = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_revoking_the_shims_access_token_is_accepted_without_asking_the_idp() -> None:
    kit = make_kit(issue_tokens=True)
    counted = IdPRequests(kit)
    login, tokens = signed_in(kit)
    answer = revoke(kit, tokens["access_token"], login["client_id"], token_type_hint="access_token")
    assert answer.status_code == 200
    assert counted.revocations == 0


def test_another_clients_refresh_token_is_not_forwarded() -> None:
    kit = make_kit(issue_tokens=True)
    counted = IdPRequests(kit)
    _, tokens = signed_in(kit)
    other = kit.register(client_name="Another client")["client_id"]
    assert revoke(kit, tokens["refresh_token"], other).status_code == 200
    assert counted.revocations == 0


class RevocationForms:
    """Records the forms the IdP's revocation endpoint receives (what the shim asks it to revoke)."""

    def __init__(self, kit: Kit) -> None:
        self.forms: list[dict[str, str]] = []
        http = kit.shim.upstream_client.http
        assert http is not None
        http.event_hooks["request"].append(self._record)

    async def _record(self, request: httpx.Request) -> None:
        if request.url.path == REVOCATION_PATH:
            await request.aread()
            self.forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})


def test_revoking_a_refresh_token_that_carries_the_idps_access_token_revokes_that_token_at_the_idp() -> None:
    """An IdP that gave no refresh token (no offline_access): the shim's refresh token carries
    the IdP's access token, which each refresh re-checks at UserInfo; revoking the shim's refresh
    token must revoke that access token at the IdP (RFC 7009 §2.1 ``token_type_hint``), or the
    next refresh would still succeed."""
    kit = make_kit(issue_tokens=True, upstream_overrides={"extra_scopes": ()})
    seen = IdPAnswers(kit)
    forms = RevocationForms(kit)
    login, tokens = signed_in(kit)
    assert "refresh_token" not in seen.bodies[0]
    assert revoke(kit, tokens["refresh_token"], login["client_id"]).status_code == 200
    asked = [(form["token"], form.get("token_type_hint")) for form in forms.forms]
    assert asked == [(seen.bodies[0]["access_token"], "access_token")]


def revocation_answers(kit: Kit, answer: httpx.Response) -> None:
    """The dev IdP as it is, except that its revocation endpoint gives ``answer`` (fault injection)."""
    idp = httpx.ASGITransport(app=kit.idp.app)

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return answer if request.url.path == REVOCATION_PATH else await idp.handle_async_request(request)

    kit.shim.upstream_client.http = httpx.AsyncClient(transport=Transport(), base_url=IDP_ISSUER)


def test_an_idp_that_cannot_revoke_access_tokens_does_not_fail_the_revocation_of_the_shims_refresh_token() -> None:
    """RFC 7009 §2.1: revoking access tokens is optional for the IdP (``unsupported_token_type``,
    §2.2.1). The client revoked the shim's refresh token, a type the shim supports: 200."""
    kit = make_kit(issue_tokens=True, upstream_overrides={"extra_scopes": ()})
    login, tokens = signed_in(kit)
    revocation_answers(kit, httpx.Response(400, json={"error": "unsupported_token_type"}))
    answer = revoke(kit, tokens["refresh_token"], login["client_id"])
    assert answer.status_code == 200, answer.text

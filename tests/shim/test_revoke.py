"""POST /oauth/revoke (RFC 7009): only the shim's own tokens, for their own client, reach the IdP.

Registration is stateless (anyone can mint a client_id), so the endpoint must not forward
whatever it is sent: each test counts the revocation requests the development IdP receives.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim.sealing import REFRESH

from .idp_direct import idp_signing_key, idp_tokens
from .kit import IDP_ISSUER, RESOURCE, Kit, make_kit

REVOCATION_PATH = "/oauth/revoke"
_STRANGER_KEY = RSAKey.generate_key(2048, private=True)


class IdPRequests:
    """Puts a counter between the shim and the dev IdP: every request the IdP receives, by path."""

    def __init__(self, kit: Kit) -> None:
        self.paths: Counter[str] = Counter()
        idp_app = kit.idp.app

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.paths[scope["path"]] += 1
            await idp_app(scope, receive, send)

        kit.shim.upstream_client.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=counted), base_url=IDP_ISSUER
        )

    @property
    def revocations(self) -> int:
        return self.paths[REVOCATION_PATH]


@pytest.fixture
def counted(kit: Kit) -> IdPRequests:
    return IdPRequests(kit)


def _tokens(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    login = kit.login()
    return login, kit.exchange(login).json()


def _revoke(kit: Kit, token: str, client_id: str, **extra: str) -> httpx.Response:
    return kit.client.post(REVOCATION_PATH, data={"token": token, "client_id": client_id, **extra})


# -- what is forwarded ----------------------------------------------------------------------------


def test_a_refresh_token_revoked_by_its_own_client_is_forwarded_once(kit: Kit, counted: IdPRequests) -> None:
    login, tokens = _tokens(kit)
    response = _revoke(kit, tokens["refresh_token"], login["client_id"])
    assert response.status_code == 200
    assert counted.revocations == 1
    again = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_an_access_token_for_this_resource_is_forwarded_once(kit: Kit, counted: IdPRequests) -> None:
    login, tokens = _tokens(kit)
    response = _revoke(kit, tokens["access_token"], login["client_id"], token_type_hint="access_token")
    assert response.status_code == 200
    assert counted.revocations == 1


# -- what is not ----------------------------------------------------------------------------------


def test_twenty_random_tokens_from_self_minted_clients_reach_the_idp_zero_times(
    kit: Kit, counted: IdPRequests
) -> None:
    answers = [_revoke(kit, secrets.token_urlsafe(32), kit.register()["client_id"]) for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert counted.revocations == 0


def _signed_by_the_idp(kit: Kit, **claims: Any) -> str:
    key = idp_signing_key(kit)
    now = int(time.time())
    payload = {"iss": IDP_ISSUER, "sub": "demo", "aud": RESOURCE, "iat": now, "exp": now + 600,
               "client_id": kit.idp.client_id, "scope": "openid", **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, payload, key)


def _self_signed(kit: Kit) -> str:
    now = int(time.time())
    claims = {"iss": IDP_ISSUER, "sub": "demo", "aud": RESOURCE, "iat": now, "exp": now + 600,
              "client_id": kit.idp.client_id}
    return jwt.encode({"alg": "RS256", "kid": idp_signing_key(kit).kid, "typ": "at+jwt"}, claims, _STRANGER_KEY)


def _jwt_shaped_garbage(kit: Kit) -> str:
    return ".".join(base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode() for _ in range(3))


def _another_clients_refresh_token(kit: Kit) -> str:
    return _tokens(kit)[1]["refresh_token"]


def _forged_refresh_token(kit: Kit) -> str:
    sealed = kit.shim.context.sealer.seal(REFRESH, {"u": "x", "c": "y", "sc": ""})
    return sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")


NOT_FORWARDED: list[tuple[str, Callable[[Kit], str]]] = [
    ("random opaque string", lambda kit: secrets.token_urlsafe(32)),
    ("JWT-shaped garbage", _jwt_shaped_garbage),
    ("JWT signed by someone else under the IdP's kid", _self_signed),
    ("expired access token", lambda kit: _signed_by_the_idp(kit, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
    ("access token for another resource", lambda kit: _signed_by_the_idp(kit, aud="https://other.example/mcp")),
    ("access token of another client of the IdP", lambda kit: _signed_by_the_idp(kit, client_id="someone-else")),
    ("ID token from the IdP", lambda kit: idp_tokens(kit)["id_token"]),
    ("raw upstream refresh token, not sealed by the shim", lambda kit: idp_tokens(kit)["refresh_token"]),
    ("another client's sealed refresh token", _another_clients_refresh_token),
    ("refresh token with a forged seal", _forged_refresh_token),
]


@pytest.mark.parametrize(("name", "build"), NOT_FORWARDED, ids=[row[0] for row in NOT_FORWARDED])
def test_tokens_that_are_not_this_clients_are_answered_200_and_not_forwarded(
    kit: Kit, counted: IdPRequests, name: str, build: Callable[[Kit], str]
) -> None:
    token = build(kit)
    # Another name: identical registrations in the same second are the same (stateless) client_id.
    client_id = kit.register(client_name="Revoking client")["client_id"]
    response = _revoke(kit, token, client_id)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert counted.revocations == 0


def test_another_clients_refresh_token_keeps_working(kit: Kit, counted: IdPRequests) -> None:
    login, tokens = _tokens(kit)
    other = kit.register(client_name="Other")["client_id"]
    assert _revoke(kit, tokens["refresh_token"], other).status_code == 200
    still = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert still.status_code == 200
    assert counted.revocations == 0


# -- client authentication and malformed requests keep their RFC shape --------------------------


def _basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


BAD_REQUESTS: list[tuple[str, dict[str, str], dict[str, str], int, str]] = [
    ("no client_id", {"token": "x"}, {}, 400, "invalid_client"),
    ("self-made client_id that is not signed", {"token": "x", "client_id": "made-up"}, {}, 400, "invalid_client"),
    ("malformed Basic header", {"token": "x"}, {"Authorization": "Basic !!!"}, 401, "invalid_client"),
    ("Basic and body client_id differ", {"token": "x", "client_id": "a"}, _basic("b:"), 401, "invalid_client"),
    ("no token", {"client_id": "anything"}, {}, 400, "invalid_request"),
]


@pytest.mark.parametrize(
    ("name", "form", "headers", "status", "error"), BAD_REQUESTS, ids=[row[0] for row in BAD_REQUESTS]
)
def test_bad_revocation_requests_get_rfc_errors_and_reach_no_idp(
    kit: Kit, counted: IdPRequests, name: str, form: dict[str, str], headers: dict[str, str], status: int, error: str
) -> None:
    response = kit.client.post(REVOCATION_PATH, data=form, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert counted.revocations == 0


def test_a_revocation_that_is_not_form_encoded_is_invalid_request(kit: Kit) -> None:
    response = kit.client.post(REVOCATION_PATH, json={"token": "x", "client_id": kit.register()["client_id"]})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


# -- the IdP's own answers ------------------------------------------------------------------------


def test_idp_down_during_revocation_gives_503() -> None:
    kit = make_kit()
    login, tokens = _tokens(kit)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down")

    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(down))
    response = _revoke(kit, tokens["refresh_token"], login["client_id"])
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_idp_keys_unavailable_while_checking_an_access_token_gives_503() -> None:
    kit = make_kit()
    login, tokens = _tokens(kit)

    def keys_down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down")

    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(keys_down))
    response = _revoke(kit, tokens["access_token"], login["client_id"])
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")


def _revocation_answers(kit: Kit, answer: httpx.Response) -> None:
    """The dev IdP as it is, except that its revocation endpoint gives ``answer``."""
    idp = httpx.ASGITransport(app=kit.idp.app)

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == REVOCATION_PATH:
                return answer
            return await idp.handle_async_request(request)

    kit.shim.upstream_client.http = httpx.AsyncClient(transport=Transport(), base_url=IDP_ISSUER)


def test_idp_refusing_the_shims_credentials_at_revocation_is_a_502() -> None:
    kit = make_kit()
    login, tokens = _tokens(kit)
    _revocation_answers(kit, httpx.Response(401, json={"error": "invalid_client"}))
    response = _revoke(kit, tokens["refresh_token"], login["client_id"])
    assert response.status_code == 502
    assert response.json()["error"] == "server_error"


def test_unsupported_token_type_is_relayed() -> None:
    kit = make_kit()
    login, tokens = _tokens(kit)
    _revocation_answers(kit, httpx.Response(400, json={"error": "unsupported_token_type"}))
    response = _revoke(kit, tokens["access_token"], login["client_id"])
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"

"""Issued-token mode through the shim's HTTP surface, with the development IdP (authlib) in
process: the client gets the shim's own tokens, never the IdP's."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.sealing import Sealer
from tests.shim.kit import CLIENT_REDIRECT, PUBLIC_URL, RESOURCE, SECRET_KEY, Kit, make_kit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def issued_kit(**kwargs: Any) -> Kit:
    return make_kit(issue_tokens=True, **kwargs)


def header(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def login_and_exchange(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    login = kit.login()
    response = kit.exchange(login)
    assert response.status_code == 200, response.text
    return login, response.json()


def jwks_of(kit: Kit) -> dict[str, Any]:
    metadata = kit.client.get("/.well-known/oauth-authorization-server").json()
    answer = kit.client.get(metadata["jwks_uri"].removeprefix(PUBLIC_URL))
    assert answer.status_code == 200
    return answer.json()


def verify_with_pyjwt(token: str, jwks: dict[str, Any], audience: str = RESOURCE) -> dict[str, Any]:
    """A resource server in "another language": PyJWT and the published JWKS only."""
    keys = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=PUBLIC_URL)


def test_login_gives_an_rfc9068_token_for_the_resource_naming_the_idp_subject() -> None:
    kit = issued_kit()
    _, body = login_and_exchange(kit)
    token = body["access_token"]
    assert header(token)["typ"] == "at+jwt"
    claims = verify_with_pyjwt(token, jwks_of(kit))
    assert claims["iss"] == PUBLIC_URL
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == kit.idp.username
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600


def test_metadata_names_the_jwks_uri_only_in_issued_mode() -> None:
    issued = issued_kit().client.get("/.well-known/oauth-authorization-server").json()
    passthrough = make_kit().client.get("/.well-known/oauth-authorization-server").json()
    assert issued["jwks_uri"] == PUBLIC_URL + "/oauth/jwks"
    assert "jwks_uri" not in passthrough


class IdPAnswers:
    """Records the IdP's token responses as the shim receives them."""

    def __init__(self, kit: Kit) -> None:
        self.bodies: list[dict[str, Any]] = []
        http = kit.shim.upstream_client.http
        assert http is not None
        http.event_hooks["response"].append(self._record)

    async def _record(self, response: Any) -> None:
        if response.request.url.path.endswith("/token"):
            await response.aread()
            self.bodies.append(response.json())

    def secrets(self) -> set[str]:
        return {b[k] for b in self.bodies for k in ("access_token", "refresh_token", "id_token") if k in b}


def test_token_response_holds_none_of_the_idp_tokens() -> None:
    kit = issued_kit()
    seen = IdPAnswers(kit)
    _, body = login_and_exchange(kit)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    idp_tokens = seen.secrets()
    assert len(idp_tokens) == 3  # access, refresh and ID token came back from the IdP
    for secret in idp_tokens:
        assert secret not in json.dumps(body)


def refresh(kit: Kit, login: dict[str, Any], refresh_token: str, **form: str) -> Any:
    return kit.token(grant_type="refresh_token", refresh_token=refresh_token, client_id=login["client_id"], **form)


def test_refresh_issues_a_new_access_token_and_rotates_the_refresh_token() -> None:
    kit = issued_kit()
    login, body = login_and_exchange(kit)
    again = refresh(kit, login, body["refresh_token"])
    assert again.status_code == 200, again.text
    renewed = again.json()
    assert renewed["refresh_token"] != body["refresh_token"]
    assert renewed["access_token"] != body["access_token"]
    claims = verify_with_pyjwt(renewed["access_token"], jwks_of(kit))
    assert claims["sub"] == kit.idp.username
    assert refresh(kit, login, renewed["refresh_token"]).status_code == 200


def test_a_narrowed_refresh_narrows_the_access_token_and_keeps_the_grant() -> None:
    """RFC 6749 §6: the new refresh token has the scope of the one presented."""
    kit = issued_kit()
    login, body = login_and_exchange(kit)
    original = body["scope"]
    narrowed = refresh(kit, login, body["refresh_token"], scope="openid")
    assert narrowed.status_code == 200, narrowed.text
    assert verify_with_pyjwt(narrowed.json()["access_token"], jwks_of(kit))["scope"] == "openid"
    widened = refresh(kit, login, narrowed.json()["refresh_token"], scope=original)
    assert widened.status_code == 200, widened.text
    assert widened.json()["scope"] == original


def test_refresh_token_of_another_client_is_invalid_grant() -> None:
    kit = issued_kit()
    _, body = login_and_exchange(kit)
    other = kit.register(client_name="Another client")["client_id"]
    answer = kit.token(grant_type="refresh_token", refresh_token=body["refresh_token"], client_id=other)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def protected_app(kit: Kit) -> TestClient:
    async def mcp(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/", mcp, methods=["GET", "POST"])])
    app = Starlette(routes=[Mount("/mcp", kit.shim.protect(inner)), *kit.shim.routes])
    return TestClient(app, base_url=PUBLIC_URL)


def test_the_shims_token_opens_the_protected_endpoint() -> None:
    kit = issued_kit()
    _, body = login_and_exchange(kit)
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + body["access_token"]})
    assert answer.status_code == 200


def test_the_idps_own_access_token_is_refused_at_the_protected_endpoint() -> None:
    kit = issued_kit()
    seen = IdPAnswers(kit)
    login_and_exchange(kit)
    idp_access_token = seen.bodies[0]["access_token"]
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + idp_access_token})
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def sibling_shim(kit: Kit, secret_keys: list[str], **kwargs: Any) -> OAuthShim:
    """Another shim in front of the same IdP (same upstream client and transport)."""
    return OAuthShim(
        public_url=PUBLIC_URL,
        resource=kwargs.pop("resource", RESOURCE),
        upstream=kit.shim.upstream,
        secret_keys=secret_keys,
        http_client=kit.shim.upstream_client.http,
        issue_tokens=True,
        **kwargs,
    )


def mint_at(shim: OAuthShim) -> str:
    issued = shim.context.issued
    assert issued is not None
    return issued.tokens.access_token(client_id="c", subject="alice", scopes="openid")


@pytest.mark.parametrize(
    ("secret_keys", "resource"),
    [
        pytest.param([SECRET_KEY], "http://127.0.0.1:8000/other", id="same-keys-another-resource"),
        pytest.param(["o" * 48], RESOURCE, id="another-shim-same-resource"),
    ],
)
def test_a_token_minted_elsewhere_is_refused(secret_keys: list[str], resource: str) -> None:
    kit = issued_kit()
    foreign = mint_at(sibling_shim(kit, secret_keys, resource=resource))
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + foreign})
    assert answer.status_code == 401


def test_a_token_minted_by_the_shim_itself_outside_a_login_is_accepted() -> None:
    """The control of the test above: the same minting path, this shim's keys and resource."""
    kit = issued_kit()
    answer = protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + mint_at(kit.shim)})
    assert answer.status_code == 200


def test_verifier_gives_the_identity_and_the_idps_token_to_tools() -> None:
    kit = issued_kit()
    seen = IdPAnswers(kit)
    _, body = login_and_exchange(kit)
    import asyncio

    from mcp_oauth_shim.issued_verifier import IssuedAccessToken

    access = asyncio.run(kit.shim.verifier.authenticate(body["access_token"]))
    assert isinstance(access, IssuedAccessToken)
    assert access.identity.subject == kit.idp.username
    assert access.upstream_access_token() == seen.bodies[0]["access_token"]


def test_sdk_verify_token_refuses_the_idps_token() -> None:
    kit = issued_kit()
    seen = IdPAnswers(kit)
    login_and_exchange(kit)
    import asyncio

    assert asyncio.run(kit.shim.verifier.verify_token(seen.bodies[0]["access_token"])) is None


def test_prepended_secret_keeps_logins_in_flight_and_refresh_tokens_working() -> None:
    kit = issued_kit()
    in_flight = kit.login()
    login, body = login_and_exchange(kit)
    rotated_shim = sibling_shim(kit, ["n" * 48, SECRET_KEY])
    kit.client = TestClient(rotated_shim.app, base_url=PUBLIC_URL)
    kit.shim = rotated_shim
    assert kit.exchange(in_flight).status_code == 200
    renewed = refresh(kit, login, body["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    # The old token still verifies (its key is still published), the new one is signed by the new key.
    assert protected_app(kit).post("/mcp/", headers={"Authorization": "Bearer " + body["access_token"]}).status_code == 200
    assert header(renewed.json()["access_token"])["kid"] != header(body["access_token"])["kid"]


def test_dropping_the_old_secret_refuses_its_refresh_tokens_with_invalid_grant() -> None:
    kit = issued_kit()
    login, body = login_and_exchange(kit)
    dropped = sibling_shim(kit, ["n" * 48])
    kit.client = TestClient(dropped.app, base_url=PUBLIC_URL)
    answer = kit.token(grant_type="refresh_token", refresh_token=body["refresh_token"], client_id=login["client_id"])
    # The client_id was signed with the dropped key too: the client must register again, and
    # its refresh token is no longer honoured either.
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] == "invalid_client", answer.text
    again = dropped_client_refresh(dropped, kit, body["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def dropped_client_refresh(shim: OAuthShim, kit: Kit, refresh_token: str) -> Any:
    """A refresh with a client registered at ``shim`` (the old client_id no longer opens)."""
    client = TestClient(shim.app, base_url=PUBLIC_URL)
    client_id = client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})


def test_idp_tokens_never_appear_in_clear_in_responses_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kit = issued_kit()
    seen = IdPAnswers(kit)
    login, body = login_and_exchange(kit)
    renewed = refresh(kit, login, body["refresh_token"])
    failed = refresh(kit, login, body["refresh_token"] + "x")
    upstream_refresh_tokens = {b["refresh_token"] for b in seen.bodies if "refresh_token" in b}
    assert len(upstream_refresh_tokens) >= 2
    idp_tokens = seen.secrets()  # access, refresh and ID tokens of both answers
    # The shim's records (the development IdP in the same process logs its own tokens: it is
    # the IdP, not the shim).
    shim_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("mcp_oauth_shim.dev_idp", "authlib"))
    )
    shown = json.dumps([body, renewed.json(), failed.json()]) + shim_log
    for value in idp_tokens:
        assert value not in shown
    # Nor readable by decoding the shim's refresh token (it is signed, not encrypted).
    payload = body["refresh_token"].split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8", "replace")
    for value in upstream_refresh_tokens:
        assert value not in decoded


def test_passthrough_mode_still_relays_the_idps_access_token() -> None:
    kit = make_kit()
    seen = IdPAnswers(kit)
    _, body = login_and_exchange(kit)
    assert body["access_token"] == seen.bodies[0]["access_token"]
    assert Sealer([SECRET_KEY])  # the kit's key

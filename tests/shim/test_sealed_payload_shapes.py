"""A validly signed value whose contents have the wrong shape (only a bug or a leaked key could
make one) gets each endpoint's usual error for a bad value of that kind, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_oauth_shim.payloads import AuthorizationCode, ClientRegistration, ConsentTicket, RefreshToken, UpstreamState
from mcp_oauth_shim.sealing import digest

from .kit import CLIENT_REDIRECT, Kit, pkce_pair

VERIFIER, CHALLENGE = pkce_pair()


def _seal(kit: Kit, kind: type[Any], wire: object) -> str:
    return kit.shim.context.sealer.seal(kind.purpose, wire)


def _code_wire(client_id: str) -> dict[str, Any]:
    return {"u": "upstream", "c": digest(client_id), "r": CLIENT_REDIRECT, "rg": 1, "cc": CHALLENGE, "sc": "openid"}


BAD_CODES = [
    pytest.param(lambda cid: ["not", "an", "object"], id="list"),
    pytest.param(lambda cid: {k: v for k, v in _code_wire(cid).items() if k != "cc"}, id="no-challenge"),
    pytest.param(lambda cid: {**_code_wire(cid), "c": 7}, id="fingerprint-number"),
    pytest.param(lambda cid: {**_code_wire(cid), "u": None}, id="upstream-code-null"),
    pytest.param(lambda cid: {**_code_wire(cid), "rg": "yes"}, id="flag-string"),
]


@pytest.mark.parametrize("wire", BAD_CODES)
def test_a_misshapen_code_is_invalid_grant(kit: Kit, wire: Any) -> None:
    client_id = kit.register()["client_id"]
    response = kit.token(
        grant_type="authorization_code",
        code=_seal(kit, AuthorizationCode, wire(client_id)),
        code_verifier=VERIFIER,
        redirect_uri=CLIENT_REDIRECT,
        client_id=client_id,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "The authorization code is malformed."}


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(lambda cid: "text", id="string"),
        pytest.param(lambda cid: {"c": digest(cid), "sc": "openid"}, id="no-upstream-token"),
        pytest.param(lambda cid: {"u": ["x"], "c": digest(cid), "sc": "openid"}, id="upstream-token-list"),
        pytest.param(lambda cid: {"u": "x", "c": digest(cid), "sc": 5}, id="scope-number"),
    ],
)
def test_a_misshapen_refresh_token_is_invalid_grant(kit: Kit, wire: Any) -> None:
    client_id = kit.register()["client_id"]
    response = kit.token(grant_type="refresh_token", refresh_token=_seal(kit, RefreshToken, wire(client_id)), client_id=client_id)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "The refresh token is malformed."}


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param({"r": "http://127.0.0.1:53682/callback"}, id="uris-string"),
        pytest.param({"r": [1]}, id="uri-number"),
        pytest.param({"r": [CLIENT_REDIRECT], "n": {"name": "x"}}, id="name-object"),
        pytest.param({"t": "native"}, id="no-uris"),
    ],
)
def test_a_misshapen_client_id_is_an_unknown_client(kit: Kit, wire: dict[str, Any]) -> None:
    client_id = _seal(kit, ClientRegistration, wire)
    response = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, CHALLENGE))
    assert response.status_code == 400
    assert "Unknown client_id (malformed)" in response.text


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param([], id="list"),
        pytest.param({"c": "fp", "r": CLIENT_REDIRECT, "cc": CHALLENGE}, id="no-scope"),
        pytest.param({"c": "fp", "r": CLIENT_REDIRECT, "cc": CHALLENGE, "sc": "", "f": "login_hint=x"}, id="hints-string"),
    ],
)
def test_a_misshapen_consent_ticket_is_refused_on_a_page(kit: Kit, wire: object) -> None:
    response = kit.client.post("/oauth/consent", data={"ticket": _seal(kit, ConsentTicket, wire), "decision": "approve"})
    assert response.status_code == 400
    assert "The consent form is malformed; start the sign-in again." in response.text
    assert "location" not in response.headers


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(None, id="null"),
        pytest.param({"c": "fp", "cc": CHALLENGE, "sc": "", "b": "b", "fl": "f"}, id="no-redirect-uri"),
        pytest.param({"c": "fp", "r": CLIENT_REDIRECT, "cc": CHALLENGE, "sc": "", "b": "b", "fl": 3}, id="flow-number"),
    ],
)
def test_a_misshapen_upstream_state_is_refused_on_a_page(kit: Kit, wire: object) -> None:
    state = _seal(kit, UpstreamState, wire)
    response = kit.client.get("/oauth/callback", params={"state": state, "code": "c"}, follow_redirects=False)
    assert response.status_code == 400
    assert "The sign-in state is malformed; start the sign-in again." in response.text
    assert "location" not in response.headers


def test_revoking_a_misshapen_refresh_token_is_answered_200(kit: Kit) -> None:
    client_id = kit.register()["client_id"]
    token = _seal(kit, RefreshToken, {"u": 1, "c": digest(client_id)})
    response = kit.client.post("/oauth/revoke", data={"token": token, "client_id": client_id})
    assert response.status_code == 200

"""POST /oauth/revoke (RFC 7009)."""

import httpx

from .kit import make_kit


def _tokens(kit):
    login = kit.login()
    return login, kit.exchange(login).json()


def test_revoking_a_refresh_token_revokes_it_at_the_idp(kit):
    login, tokens = _tokens(kit)
    response = kit.client.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": login["client_id"]})
    assert response.status_code == 200
    again = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_another_clients_refresh_token_is_not_revoked(kit):
    login, tokens = _tokens(kit)
    other = kit.register(client_name="Other")["client_id"]
    assert kit.client.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": other}).status_code == 200
    still = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert still.status_code == 200


def test_unknown_tokens_are_not_an_error(kit):
    client_id = kit.register()["client_id"]
    assert kit.client.post("/oauth/revoke", data={"token": "nonsense", "client_id": client_id}).status_code == 200


def test_revocation_requires_token_and_client(kit):
    assert kit.client.post("/oauth/revoke", data={"client_id": kit.register()["client_id"]}).json()["error"] == "invalid_request"
    assert kit.client.post("/oauth/revoke", data={"token": "x"}).json()["error"] == "invalid_client"


def test_idp_down_during_revocation_gives_503():
    kit = make_kit()
    login, tokens = _tokens(kit)

    def down(request):
        raise httpx.ConnectError("down")

    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(down))
    response = kit.client.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": login["client_id"]})
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def _answering(kit, response):
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: response))


def test_idp_refusing_the_shims_credentials_at_revocation_is_a_502():
    kit = make_kit()
    login, tokens = _tokens(kit)
    _answering(kit, httpx.Response(401, json={"error": "invalid_client"}))
    response = kit.client.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": login["client_id"]})
    assert response.status_code == 502
    assert response.json()["error"] == "server_error"


def test_unsupported_token_type_is_relayed():
    kit = make_kit()
    login, tokens = _tokens(kit)
    _answering(kit, httpx.Response(400, json={"error": "unsupported_token_type"}))
    response = kit.client.post("/oauth/revoke", data={"token": tokens["access_token"], "client_id": login["client_id"]})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"

"""POST /oauth/token (DESIGN §6.5): only our two grants, only for this client, only with PKCE."""

import base64

import httpx
import pytest

from mcp_oauth_shim import Lifetimes

from .kit import CLIENT_REDIRECT, RESOURCE, Kit, make_kit


def test_authorization_code_grant_returns_the_idps_audience_bound_tokens(kit):
    login = kit.login()
    response = kit.exchange(login)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"].count(".") == 2
    assert "id_token" not in body
    assert response.headers["cache-control"] == "no-store"
    import asyncio

    access = asyncio.run(kit.shim.verifier.verify_token(body["access_token"]))
    assert access is not None and access.resource == RESOURCE and access.subject


def test_refresh_token_is_wrapped_and_bound_to_its_client(kit):
    login = kit.login()
    tokens = kit.exchange(login).json()
    assert tokens["refresh_token"].count(".") >= 2
    refreshed = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["access_token"]
    other = kit.register(client_name="Other")["client_id"]
    stolen = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=other)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


def test_refresh_cannot_widen_the_scope(kit):
    login = kit.login()
    tokens = kit.exchange(login).json()
    response = kit.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"], scope="openid admin"
    )
    assert response.json()["error"] == "invalid_scope"


def test_refresh_may_narrow_the_scope(kit):
    login = kit.login()
    tokens = kit.exchange(login).json()
    assert set(tokens["scope"].split()) > {"openid"}
    response = kit.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"], scope="openid"
    )
    assert response.status_code == 200, response.text
    # The IdP reports what it granted: the narrowed scope plus the shim's own offline_access,
    # kept on every refresh so that the IdP still issues refresh tokens.
    assert set(response.json()["scope"].split()) == {"openid", "offline_access"}


def test_a_narrowed_refresh_keeps_the_original_scope_in_the_new_refresh_token(kit):
    """RFC 6749 §6: the new refresh token has the scope of the one presented, so narrowing
    one access token does not narrow the grant: the next refresh may ask for all of it again."""
    login = kit.login()
    tokens = kit.exchange(login).json()
    original = tokens["scope"]
    narrowed = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=login["client_id"], scope="openid")
    assert narrowed.status_code == 200, narrowed.text
    widened = kit.token(
        grant_type="refresh_token", refresh_token=narrowed.json()["refresh_token"], client_id=login["client_id"], scope=original
    )
    assert widened.status_code == 200, widened.text
    assert set(widened.json()["scope"].split()) == set(original.split())


class SilentScopeIdP:
    """An IdP that applies its own default scope and never reports it (RFC 6749 §5.1 allows an
    absent ``scope``), so the shim knows of no granted scope. Records what it is sent."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, json={"access_token": "a.b.c", "token_type": "Bearer", "refresh_token": "upstream-rt"})


def _grant_without_scope() -> tuple[Kit, SilentScopeIdP, dict[str, str], str]:
    """A login for which the shim asked the IdP for no scope, and the IdP reported none."""
    kit = make_kit(upstream_overrides={"default_scopes": (), "extra_scopes": ()})
    login = kit.login()
    idp = SilentScopeIdP()
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(idp))
    tokens = kit.exchange(login).json()
    assert "scope" not in tokens
    return kit, idp, tokens, login["client_id"]


@pytest.mark.parametrize("scope", ["openid", "admin", "openid profile offline_access"])
def test_refresh_asking_for_a_scope_is_refused_when_the_grant_named_none(scope):
    kit, idp, tokens, client_id = _grant_without_scope()
    response = kit.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=client_id, scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert [form["grant_type"] for form in idp.forms] == ["authorization_code"]  # the IdP was not asked


@pytest.mark.parametrize("scope", [None, "", " "])
def test_refresh_without_a_scope_is_accepted_when_the_grant_named_none(scope):
    kit, idp, tokens, client_id = _grant_without_scope()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    if scope is not None:
        form["scope"] = scope
    response = kit.token(**form)
    assert response.status_code == 200, response.text
    assert "scope" not in idp.forms[-1]


def test_code_cannot_be_redeemed_twice(kit):
    login = kit.login()
    assert kit.exchange(login).status_code == 200
    again = kit.exchange(login)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "client_credentials",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "AUTHORIZATION_CODE",
    ],
)
def test_every_other_grant_is_refused_locally(kit, grant_type):
    response = kit.token(grant_type=grant_type, client_id=kit.register()["client_id"], username="u", password="p")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_code_issued_to_another_client_is_refused(kit):
    login = kit.login()
    other = kit.register(client_name="Attacker")["client_id"]
    response = kit.token(
        grant_type="authorization_code",
        code=login["code"],
        redirect_uri=CLIENT_REDIRECT,
        code_verifier=login["verifier"],
        client_id=other,
    )
    assert response.json()["error"] == "invalid_grant"


BAD_EXCHANGES = [
    ({"code_verifier": None}, "invalid_request"),
    ({"code_verifier": "short"}, "invalid_grant"),
    ({"code_verifier": "A" * 43}, "invalid_grant"),
    ({"code_verifier": "A" * 129}, "invalid_grant"),
    ({"redirect_uri": "http://127.0.0.1:53682/other"}, "invalid_grant"),
    ({"redirect_uri": None}, "invalid_grant"),
    ({"code": None}, "invalid_request"),
    ({"code": "forged"}, "invalid_grant"),
    ({"client_id": None}, "invalid_client"),
    ({"client_id": "forged"}, "invalid_client"),
    ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ({"grant_type": None}, "invalid_request"),
]


@pytest.mark.parametrize(("changes", "error"), BAD_EXCHANGES)
def test_bad_code_exchanges_are_refused_before_the_idp_is_called(kit, changes, error):
    login = kit.login()
    form = {
        "grant_type": "authorization_code",
        "code": login["code"],
        "redirect_uri": CLIENT_REDIRECT,
        "code_verifier": login["verifier"],
        "client_id": login["client_id"],
    }
    for key, value in changes.items():
        if value is None:
            form.pop(key)
        else:
            form[key] = value
    response = kit.token(**form)
    assert response.status_code in (400, 401)
    assert response.json()["error"] == error
    # The real code is still good: nothing was sent upstream.
    assert kit.exchange(login).status_code == 200


def test_expired_code_is_refused():
    kit = make_kit(lifetimes=Lifetimes(code=-1))
    response = kit.exchange(kit.login())
    assert response.json()["error"] == "invalid_grant"


def test_basic_auth_with_the_public_client_id_is_accepted(kit):
    login = kit.login()
    basic = base64.b64encode(f"{login['client_id']}:".encode()).decode()
    response = kit.client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": login["code"], "redirect_uri": CLIENT_REDIRECT,
              "code_verifier": login["verifier"]},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"grant_type":"authorization_code"}', {"Content-Type": "application/json"}),
        (b"grant_type=authorization_code&grant_type=password", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe\xfd", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"a=" + b"x" * 70000, {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"grant_type=authorization_code", {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic !!!"}),
        (b"grant_type=authorization_code", {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer x"}),
        (b"", {}),
    ],
)
def test_malformed_token_requests_get_400_not_500(kit, body, headers):
    response = kit.client.post("/oauth/token", content=body, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.json()["error"] in ("invalid_request", "invalid_client")


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")), 502),
        (lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow")), 504),
        (lambda r: httpx.Response(200, content=b"<html>not json</html>"), 502),
        (lambda r: httpx.Response(200, json=["a", "list"]), 502),
        (lambda r: httpx.Response(200, json={"token_type": "Bearer"}), 502),
        (lambda r: httpx.Response(500, content=b"boom"), 502),
        (lambda r: httpx.Response(401, json={"error": "invalid_client"}), 502),
        # The IdP asks to come back later: passed on as such (tests/shim/test_idp_faults.py).
        (lambda r: httpx.Response(503, json={"error": "temporarily_unavailable"}), 503),
    ],
)
def test_idp_down_slow_or_garbage_gives_502_or_504_json(handler, status):
    kit = make_kit()
    login = kit.login()
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    response = kit.exchange(login)
    assert response.status_code == status
    assert response.json()["error"] in ("server_error", "temporarily_unavailable")
    assert kit.idp.client_secret not in response.text


def test_idp_invalid_grant_is_relayed_as_invalid_grant():
    kit = make_kit()
    login = kit.login()
    kit.shim.upstream_client.http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"error": "invalid_grant", "error_description": "code used"}))
    )
    response = kit.exchange(login)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "code used"}


def test_upstream_token_request_carries_the_secret_and_shim_callback_only_server_side():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, json={"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60})

    kit = make_kit()
    login = kit.login()
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    response = kit.exchange(login)
    assert response.status_code == 200
    assert seen["client_secret"] == kit.idp.client_secret
    assert seen["client_id"] == kit.idp.client_id
    assert seen["redirect_uri"] == "http://127.0.0.1:8000/oauth/callback"
    assert seen["code_verifier"] == login["verifier"]
    assert seen["resource"] == RESOURCE
    assert response.json()["token_type"] == "Bearer"


def test_client_secret_basic_upstream_auth_sends_the_secret_in_the_header():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization", "")
        seen["body"] = request.content.decode()
        return httpx.Response(200, json={"access_token": "a.b.c", "token_type": "Bearer"})

    kit = make_kit(upstream_overrides={"token_auth_method": "client_secret_basic"})
    login = kit.login()
    kit.shim.upstream_client.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    assert kit.exchange(login).status_code == 200
    assert seen["auth"].startswith("Basic ")
    assert "client_secret" not in seen["body"]

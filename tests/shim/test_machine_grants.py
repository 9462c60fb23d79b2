"""Machine grants through ``POST /oauth/token``: client_credentials (RFC 6749 §4.4) and the
jwt-bearer grant with an ID-JAG (RFC 7523 §2.1, MCP enterprise-managed authorization), served
with the shim's own tokens; each refusal as a client sees it on the wire."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.config import ConfigurationError
from mcp_oauth_shim.id_jag import EnterpriseIdP
from mcp_oauth_shim.issued_verifier import IssuedAccessToken
from mcp_oauth_shim.machine_clients import MachineClient
from mcp_oauth_shim.rfc7523 import JWT_BEARER_CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE
from tests.peers.id_jag_issuer import IdJagIssuer

from .assertion_kit import EC_KEY, jwks, sign

PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
TOKEN = "/oauth/token"
SECRET = "s3cr3t-of-the-reporting-job-0123"
CC = "client_credentials"
JB = JWT_BEARER_GRANT_TYPE
ENTERPRISE = IdJagIssuer("https://idp.enterprise.example")
UNTRUSTED = IdJagIssuer("https://idp.elsewhere.example")
UPSTREAM = Upstream(
    client_id="shim-at-the-idp",
    client_secret="upstream-secret-0123456789",
    issuer="https://idp.upstream.example",
    authorization_endpoint="https://idp.upstream.example/authorize",
    token_endpoint="https://idp.upstream.example/token",
    jwks_uri="https://idp.upstream.example/jwks",
)
MACHINE_CLIENTS = (
    MachineClient("reporter", client_secret=SECRET, scopes=("notes:read", "notes:write")),
    MachineClient("signer", jwks=jwks(EC_KEY), scopes=("notes:read",)),
    MachineClient("agent-1", client_secret=SECRET, grant_types=frozenset({JB}), scopes=("notes:read", "notes:write")),
    MachineClient("agent-2", client_secret=SECRET, grant_types=frozenset({JB}), scopes=("notes:read",)),
)


def machine_shim(**overrides: Any) -> OAuthShim:
    options: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "upstream": UPSTREAM,
        "secret_keys": ["k" * 48],
        "issue_tokens": True,
        "machine_clients": MACHINE_CLIENTS,
        "enterprise_idps": [EnterpriseIdP(issuer=ENTERPRISE.issuer, jwks=ENTERPRISE.jwks())],
    }
    return OAuthShim(**{**options, **overrides})


@pytest.fixture
def shim() -> OAuthShim:
    return machine_shim()


@pytest.fixture
def client(shim: OAuthShim) -> Iterator[TestClient]:
    with TestClient(shim.app, base_url=PUBLIC_URL) as test_client:
        yield test_client


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def verified(shim: OAuthShim, token: str) -> IssuedAccessToken:
    access = anyio.run(shim.verifier.verify_token, token)
    assert isinstance(access, IssuedAccessToken)
    return access


def client_assertion(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "signer", "sub": "signer", "aud": PUBLIC_URL, "iat": now, "exp": now + 60, "jti": f"j-{time.monotonic_ns()}"}
    return sign({**claims, **overrides})


def id_jag(**overrides: Any) -> str:
    options: dict[str, Any] = {
        "subject": "alice@enterprise",
        "client_id": "agent-1",
        "audience": PUBLIC_URL,
        "resource": RESOURCE,
        "scope": "notes:read notes:write",
    }
    return ENTERPRISE.id_jag(**{**options, **overrides})


def jwt_bearer_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": JB, "assertion": assertion, "client_id": "agent-1", "client_secret": SECRET, **extra}


# -- client_credentials, shim-issued ----------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_gets_a_token_whose_subject_is_the_client(
    shim: OAuthShim, client: TestClient, method: str
) -> None:
    form = {"grant_type": CC, "scope": "notes:read", "resource": RESOURCE}
    if method == "client_secret_basic":
        response = client.post(TOKEN, data=form, headers=basic("reporter", SECRET))
    else:
        response = client.post(TOKEN, data={**form, "client_id": "reporter", "client_secret": SECRET})
    assert response.status_code == 200, response.text
    body = response.json()
    access = verified(shim, body["access_token"])
    assert (access.subject, access.client_id, access.scopes, access.resource) == ("reporter", "reporter", ["notes:read"], RESOURCE)
    assert (body["token_type"], body["scope"]) == ("Bearer", "notes:read")
    assert response.headers["cache-control"] == "no-store"


def test_client_credentials_issues_no_refresh_token(client: TestClient) -> None:
    response = client.post(TOKEN, data={"grant_type": CC}, headers=basic("reporter", SECRET))
    assert response.status_code == 200
    assert "refresh_token" not in response.json()


def test_client_credentials_without_scope_gets_every_allowed_scope(shim: OAuthShim, client: TestClient) -> None:
    response = client.post(TOKEN, data={"grant_type": CC}, headers=basic("reporter", SECRET))
    assert verified(shim, response.json()["access_token"]).scopes == ["notes:read", "notes:write"]


def test_client_credentials_grants_the_allowed_part_of_the_requested_scopes(shim: OAuthShim, client: TestClient) -> None:
    # MCP clients request the resource's scopes_supported; RFC 6749 §3.3 lets the server grant less.
    signer_form = {"grant_type": CC, "scope": "notes:read notes:write"}
    response = client.post(TOKEN, data={**signer_form, "client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": client_assertion()})
    assert response.json()["scope"] == "notes:read"
    assert verified(shim, response.json()["access_token"]).scopes == ["notes:read"]


def test_client_credentials_with_private_key_jwt(shim: OAuthShim, client: TestClient) -> None:
    form = {"grant_type": CC, "client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": client_assertion()}
    response = client.post(TOKEN, data=form)
    assert response.status_code == 200, response.text
    assert verified(shim, response.json()["access_token"]).subject == "signer"


def test_client_assertion_is_single_use_at_the_token_endpoint(client: TestClient) -> None:
    form = {"grant_type": CC, "client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": client_assertion()}
    assert client.post(TOKEN, data=form).status_code == 200
    replayed = client.post(TOKEN, data=form)
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_client")


def registered_client_id(client: TestClient) -> str:
    response = client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:53682/callback"]})
    assert response.status_code == 201
    return str(response.json()["client_id"])


CLIENT_CREDENTIALS_REFUSALS: list[Any] = [
    # (form, basic credentials, status, error)
    pytest.param({}, ("reporter", "wrong-secret-0123456789"), 401, "invalid_client", id="wrong-secret-basic"),
    # RFC 6749 §5.2: 401 when the client used the Authorization header; 400 for the body.
    pytest.param({"client_id": "reporter", "client_secret": "wrong-secret-0123456789"}, None, 400, "invalid_client", id="wrong-secret-post"),
    pytest.param({"client_id": "reporter"}, None, 400, "invalid_client", id="no-secret"),
    pytest.param({}, ("nobody", SECRET), 401, "invalid_client", id="unknown-client"),
    pytest.param({"client_id": "https://app.example/client.json"}, None, 400, "unauthorized_client", id="metadata-document-client"),
    pytest.param({"client_id": "agent-1", "client_secret": SECRET}, None, 400, "unauthorized_client", id="client-registered-for-jwt-bearer-only"),
    pytest.param({"scope": "notes:admin"}, ("reporter", SECRET), 400, "invalid_scope", id="scope-not-allowed"),
    pytest.param({"resource": "https://elsewhere.example/mcp"}, ("reporter", SECRET), 400, "invalid_target", id="resource-not-ours"),
]


@pytest.mark.parametrize(("form", "credentials", "status", "error"), CLIENT_CREDENTIALS_REFUSALS)
def test_client_credentials_refusal(
    client: TestClient, form: dict[str, str], credentials: tuple[str, str] | None, status: int, error: str
) -> None:
    headers = basic(*credentials) if credentials else {}
    response = client.post(TOKEN, data={"grant_type": CC, **form}, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert SECRET not in response.text


def test_client_credentials_from_a_dynamically_registered_client_is_unauthorized_client(client: TestClient) -> None:
    client_id = registered_client_id(client)
    response = client.post(TOKEN, data={"grant_type": CC, "client_id": client_id})
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


def test_wrong_secret_in_basic_gets_a_basic_challenge(client: TestClient) -> None:
    response = client.post(TOKEN, data={"grant_type": CC}, headers=basic("reporter", "wrong-secret-0123456789"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("basic")


# -- jwt-bearer with an ID-JAG -----------------------------------------------------------------


def test_id_jag_gets_a_token_for_the_enterprise_user(shim: OAuthShim, client: TestClient) -> None:
    response = client.post(TOKEN, data=jwt_bearer_form(id_jag(), resource=RESOURCE, scope="notes:read"))
    assert response.status_code == 200, response.text
    body = response.json()
    access = verified(shim, body["access_token"])
    assert (access.subject, access.client_id, access.scopes) == ("alice@enterprise", "agent-1", ["notes:read"])
    assert "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"


def test_id_jag_with_basic_client_authentication(shim: OAuthShim, client: TestClient) -> None:
    form = {"grant_type": JB, "assertion": id_jag()}
    response = client.post(TOKEN, data=form, headers=basic("agent-1", SECRET))
    assert response.status_code == 200, response.text


def test_id_jag_scopes_are_those_both_the_idp_and_the_operator_allow(shim: OAuthShim, client: TestClient) -> None:
    form = {"grant_type": JB, "assertion": id_jag(client_id="agent-2")}
    response = client.post(TOKEN, data=form, headers=basic("agent-2", SECRET))
    assert verified(shim, response.json()["access_token"]).scopes == ["notes:read"]


def test_id_jag_carries_the_users_email_into_the_token(shim: OAuthShim, client: TestClient) -> None:
    claims = ENTERPRISE.id_jag_claims(subject="bob", client_id="agent-1", audience=PUBLIC_URL, resource=RESOURCE)
    assertion = ENTERPRISE.sign({"typ": "oauth-id-jag+jwt"}, {**claims, "email": "bob@enterprise.example"})
    response = client.post(TOKEN, data=jwt_bearer_form(assertion))
    assert verified(shim, response.json()["access_token"]).email == "bob@enterprise.example"


def test_replayed_id_jag_is_invalid_grant(client: TestClient) -> None:
    assertion = id_jag()
    assert client.post(TOKEN, data=jwt_bearer_form(assertion)).status_code == 200
    replayed = client.post(TOKEN, data=jwt_bearer_form(assertion))
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")


def expired_id_jag() -> str:
    claims = ENTERPRISE.id_jag_claims(subject="alice", client_id="agent-1", audience=PUBLIC_URL, resource=RESOURCE)
    claims.update(iat=claims["iat"] - 900, exp=claims["iat"] - 600)
    return ENTERPRISE.sign({"typ": "oauth-id-jag+jwt"}, claims)


ID_JAG_REFUSALS: list[Any] = [
    # (form, status, error)
    pytest.param(lambda: jwt_bearer_form(id_jag(audience="https://other-as.example")), 400, "invalid_grant", id="other-audience"),
    pytest.param(lambda: jwt_bearer_form(id_jag(audience=PUBLIC_URL + TOKEN)), 400, "invalid_grant", id="token-endpoint-as-audience"),
    pytest.param(lambda: jwt_bearer_form(id_jag(client_id="agent-2")), 400, "invalid_grant", id="issued-to-another-client"),
    pytest.param(lambda: jwt_bearer_form(expired_id_jag()), 400, "invalid_grant", id="expired"),
    pytest.param(
        lambda: jwt_bearer_form(UNTRUSTED.id_jag(subject="mallory", client_id="agent-1", audience=PUBLIC_URL, resource=RESOURCE)),
        400,
        "invalid_grant",
        id="untrusted-issuer",
    ),
    pytest.param(lambda: jwt_bearer_form(id_jag(resource="https://elsewhere.example/mcp")), 400, "invalid_grant", id="id-jag-for-another-resource"),
    pytest.param(lambda: jwt_bearer_form(id_jag(), resource="https://elsewhere.example/mcp"), 400, "invalid_target", id="resource-parameter-not-ours"),
    pytest.param(lambda: jwt_bearer_form(id_jag(), scope="notes:admin"), 400, "invalid_scope", id="scope-beyond-the-grant"),
    pytest.param(lambda: jwt_bearer_form(id_jag(scope="notes:read notes:admin"), scope="notes:admin"), 400, "invalid_scope", id="scope-beyond-the-client"),
    pytest.param(lambda: {**jwt_bearer_form(id_jag()), "assertion": ""}, 400, "invalid_request", id="no-assertion"),
    pytest.param(lambda: {**jwt_bearer_form(id_jag()), "client_secret": "wrong-secret-0123456789"}, 400, "invalid_client", id="wrong-client-secret"),
    pytest.param(lambda: {"grant_type": JB, "assertion": id_jag(), "client_id": "agent-1"}, 400, "invalid_client", id="no-client-authentication"),
    pytest.param(lambda: {"grant_type": JB, "assertion": id_jag(), "client_id": "reporter", "client_secret": SECRET}, 400, "unauthorized_client", id="client-not-registered-for-the-grant"),
]


@pytest.mark.parametrize(("make_form", "status", "error"), ID_JAG_REFUSALS)
def test_id_jag_refusal(client: TestClient, make_form: Any, status: int, error: str) -> None:
    form = make_form()
    response = client.post(TOKEN, data=form)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert form["assertion"] == "" or form["assertion"] not in response.text


def test_id_jag_from_a_dynamically_registered_client_is_unauthorized_client(client: TestClient) -> None:
    client_id = registered_client_id(client)
    response = client.post(TOKEN, data={"grant_type": JB, "assertion": id_jag(client_id=client_id), "client_id": client_id})
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


# -- metadata and configuration ----------------------------------------------------------------


def test_metadata_advertises_the_configured_machine_grants_and_methods(client: TestClient) -> None:
    doc = client.get("/.well-known/oauth-authorization-server").json()
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token", CC, JB]
    assert doc["token_endpoint_auth_methods_supported"] == ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert "ES256" in doc["token_endpoint_auth_signing_alg_values_supported"]
    assert "HS256" not in doc["token_endpoint_auth_signing_alg_values_supported"]


def test_metadata_without_a_key_client_names_no_signing_algorithms() -> None:
    shim = machine_shim(machine_clients=[MACHINE_CLIENTS[0]], enterprise_idps=())
    with TestClient(shim.app, base_url=PUBLIC_URL) as test_client:
        doc = test_client.get("/.well-known/oauth-authorization-server").json()
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token", CC]
    assert "token_endpoint_auth_signing_alg_values_supported" not in doc


def test_metadata_without_machine_clients_offers_neither_grant() -> None:
    shim = machine_shim(machine_clients=(), enterprise_idps=())
    with TestClient(shim.app, base_url=PUBLIC_URL) as test_client:
        doc = test_client.get("/.well-known/oauth-authorization-server").json()
        refused = test_client.post(TOKEN, data={"grant_type": CC}, headers=basic("reporter", SECRET))
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["token_endpoint_auth_methods_supported"] == ["none"]
    assert refused.json()["error"] == "unsupported_grant_type"


BAD_CONFIGURATIONS: list[Any] = [
    pytest.param({"issue_tokens": False}, "issue_tokens=True", id="issued-machine-tokens-in-passthrough-mode"),
    pytest.param(
        {"machine_clients": [MachineClient("up", client_secret=SECRET, mode="upstream")], "enterprise_idps": ()},
        "mode='upstream'",
        id="upstream-machine-tokens-in-issued-mode",
    ),
    pytest.param({"machine_clients": [MACHINE_CLIENTS[0]]}, "jwt-bearer grant", id="idps-without-a-jwt-bearer-client"),
    pytest.param({"enterprise_idps": ()}, "no enterprise_idps", id="jwt-bearer-client-without-idps"),
    pytest.param(
        {"machine_clients": [MACHINE_CLIENTS[0], MACHINE_CLIENTS[0]], "enterprise_idps": ()}, "configured twice", id="client-twice"
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGURATIONS)
def test_unusable_machine_configuration_is_refused_at_start(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        machine_shim(**overrides)

"""POST /oauth/revoke from the operator's machine clients (RFC 7009 §2.1: the client authenticates
as at the token endpoint, and only a token issued to it is revoked; §2.2: any other token gets 200).

The IdP is the development IdP; each test records what its revocation endpoint receives. Both
token modes: issued (the shim's RFC 9068 tokens, nothing to forward) and passthrough
(``mode="upstream"``, the IdP's own machine token, forwarded like any access token the IdP issued
to the shim's client).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwt

from mcp_oauth_shim.id_jag import EnterpriseIdP
from mcp_oauth_shim.issued_verifier import IssuedAccessToken
from mcp_oauth_shim.machine_clients import MachineClient, TokenMode
from mcp_oauth_shim.rfc7523 import JWT_BEARER_CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE
from tests.issued.test_issued_revoke import RevocationForms
from tests.peers.id_jag_issuer import IdJagIssuer

from .assertion_kit import EC_KEY, OTHER_EC_KEY, jwks, sign
from .idp_direct import idp_signing_key
from .kit import IDP_ISSUER, PUBLIC_URL, RESOURCE, Kit, make_kit

REVOKE = "/oauth/revoke"
TOKEN = "/oauth/token"
SECRET = "s3cr3t-of-the-reporting-job-0123"
ENTERPRISE = IdJagIssuer("https://idp.enterprise.example")
MODES: list[TokenMode] = ["issued", "upstream"]


def machine_kit(mode: TokenMode, *extra: MachineClient) -> Kit:
    """The dev IdP and a shim serving a secret client (``reporter``) and a key client
    (``signer``) in ``mode``; in issued mode also a client allowed only the jwt-bearer grant."""
    clients = [
        MachineClient("reporter", client_secret=SECRET, scopes=("notes:read",), mode=mode),
        MachineClient("signer", jwks=jwks(EC_KEY), scopes=("notes:read",), mode=mode),
        *extra,
    ]
    if mode == "upstream":
        return make_kit(machine_clients=clients)
    agent = MachineClient("agent", client_secret=SECRET, grant_types=frozenset({JWT_BEARER_GRANT_TYPE}), scopes=("notes:read",))
    idps = [EnterpriseIdP(issuer=ENTERPRISE.issuer, jwks=ENTERPRISE.jwks())]
    return make_kit(issue_tokens=True, machine_clients=[*clients, agent], enterprise_idps=idps)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def client_assertion(**overrides: Any) -> dict[str, str]:
    """The form fields of an RFC 7523 §2.2 client assertion, by ``signer`` unless overridden."""
    key = overrides.pop("key", EC_KEY)
    now = int(time.time())
    claims = {"iss": "signer", "sub": "signer", "aud": PUBLIC_URL, "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(12)}
    return {"client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": sign({**claims, **overrides}, key=key)}


# How a request authenticates: (form fields, headers), built afresh for each request.
Credentials = Callable[[], tuple[dict[str, str], dict[str, str]]]


def revoke(kit: Kit, token: str, credentials: Credentials) -> httpx.Response:
    form, headers = credentials()
    return kit.client.post(REVOKE, data={"token": token, **form}, headers=headers)


def reporter_basic() -> tuple[dict[str, str], dict[str, str]]:
    return {}, basic("reporter", SECRET)


def machine_token(kit: Kit, credentials: Credentials = reporter_basic) -> str:
    form, headers = credentials()
    answer = kit.client.post(TOKEN, data={"grant_type": "client_credentials", **form}, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


# -- client authentication -----------------------------------------------------------------------

AUTHENTICATED: list[Any] = [
    pytest.param("issued", reporter_basic, id="issued-client_secret_basic"),
    pytest.param("issued", lambda: ({"client_id": "reporter", "client_secret": SECRET}, {}), id="issued-client_secret_post"),
    pytest.param("issued", lambda: (client_assertion(), {}), id="issued-private_key_jwt"),
    pytest.param("issued", lambda: ({"client_id": "signer", **client_assertion()}, {}), id="issued-private_key_jwt-with-client_id"),
    pytest.param("issued", lambda: ({}, basic("agent", SECRET)), id="issued-client-allowed-only-jwt-bearer"),
    pytest.param("upstream", reporter_basic, id="upstream-client_secret_basic"),
    pytest.param("upstream", lambda: ({"client_id": "reporter", "client_secret": SECRET}, {}), id="upstream-client_secret_post"),
    pytest.param("upstream", lambda: (client_assertion(), {}), id="upstream-private_key_jwt"),
]


@pytest.mark.parametrize(("mode", "credentials"), AUTHENTICATED)
def test_a_machine_client_authenticated_as_at_the_token_endpoint_may_revoke(mode: TokenMode, credentials: Credentials) -> None:
    kit = machine_kit(mode)
    response = revoke(kit, secrets.token_urlsafe(32), credentials)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


REFUSED: list[Any] = [
    pytest.param(lambda: ({}, basic("reporter", "wrong-secret-0123456789")), id="wrong-secret-basic"),
    pytest.param(lambda: ({"client_id": "reporter", "client_secret": "wrong-secret-0123456789"}, {}), id="wrong-secret-post"),
    pytest.param(lambda: ({"client_id": "reporter"}, {}), id="secret-client-without-its-secret"),
    pytest.param(lambda: ({}, basic("reporter", "")), id="secret-client-with-an-empty-basic-secret"),
    pytest.param(lambda: ({}, basic("signer", SECRET)), id="key-client-with-a-secret"),
    pytest.param(lambda: (client_assertion(iss="reporter", sub="reporter"), {}), id="secret-client-with-an-assertion"),
    pytest.param(lambda: (client_assertion(key=OTHER_EC_KEY), {}), id="assertion-signed-by-another-key"),
    pytest.param(lambda: (client_assertion(aud="https://elsewhere.example"), {}), id="assertion-for-another-audience"),
    pytest.param(lambda: (client_assertion(exp=int(time.time()) - 120), {}), id="expired-assertion"),
    pytest.param(lambda: (client_assertion(jti=None), {}), id="assertion-without-jti"),
    pytest.param(lambda: (client_assertion(iss="stranger", sub="stranger"), {}), id="assertion-naming-no-machine-client"),
    pytest.param(lambda: ({"client_id": "reporter", **client_assertion()}, {}), id="assertion-sub-differs-from-client_id"),
    pytest.param(
        lambda: ({"client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": "not-a-jwt"}, {}),
        id="garbage-assertion",
    ),
    pytest.param(
        lambda: ({**client_assertion(), "client_assertion_type": "urn:example:other", "client_id": "signer"}, {}),
        id="other-assertion-type",
    ),
    pytest.param(lambda: ({**client_assertion(), "client_secret": SECRET}, {}), id="assertion-and-secret"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("credentials", REFUSED)
def test_a_machine_client_refused_at_the_token_endpoint_is_refused_alike_at_revocation(
    mode: TokenMode, credentials: Credentials
) -> None:
    kit = machine_kit(mode)
    forms = RevocationForms(kit)
    form, headers = credentials()
    at_token = kit.client.post(TOKEN, data={"grant_type": "client_credentials", **form}, headers=headers)
    form, headers = credentials()
    at_revocation = kit.client.post(REVOKE, data={"token": secrets.token_urlsafe(32), **form}, headers=headers)
    assert at_token.status_code in (400, 401), at_token.text
    assert (at_revocation.status_code, at_revocation.json(), at_revocation.headers.get("www-authenticate")) == (
        at_token.status_code,
        at_token.json(),
        at_token.headers.get("www-authenticate"),
    )
    assert forms.forms == []


SPENDING_ORDERS = [pytest.param(REVOKE, REVOKE, id="revoke-then-revoke"), pytest.param(TOKEN, REVOKE, id="token-then-revoke"), pytest.param(REVOKE, TOKEN, id="revoke-then-token")]


@pytest.mark.parametrize(("first", "second"), SPENDING_ORDERS)
def test_a_client_assertion_is_spent_by_whichever_endpoint_sees_it_first(first: str, second: str) -> None:
    kit = machine_kit("issued")
    assertion = client_assertion()
    forms = {REVOKE: {"token": secrets.token_urlsafe(32), **assertion}, TOKEN: {"grant_type": "client_credentials", **assertion}}
    assert kit.client.post(first, data=forms[first]).status_code == 200
    replayed = kit.client.post(second, data=forms[second])
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_client")
    assert "already used" in replayed.json()["error_description"]


def test_a_key_client_whose_keys_cannot_be_fetched_gets_503_at_revocation() -> None:
    unreachable = MachineClient("fetcher", jwks_uri=IDP_ISSUER + "/no-such-keys.json", scopes=("notes:read",))
    kit = machine_kit("issued", unreachable)
    response = revoke(kit, secrets.token_urlsafe(32), lambda: (client_assertion(iss="fetcher", sub="fetcher"), {}))
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")


# -- which tokens reach the IdP ------------------------------------------------------------------


def upstream_machine_token(kit: Kit, **claims: Any) -> str:
    """An access token as the IdP's client_credentials grant makes it for the shim's own client
    (``sub`` and ``client_id`` that client, ``aud`` the resource), signed with the IdP's key."""
    key = idp_signing_key(kit)
    now = int(time.time())
    payload = {"iss": IDP_ISSUER, "sub": kit.idp.client_id, "aud": RESOURCE, "iat": now, "exp": now + 600,
               "client_id": kit.idp.client_id, "scope": "notes:read", "jti": secrets.token_urlsafe(8), **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, payload, key)


def a_users_refresh_token(kit: Kit) -> str:
    login = kit.login()
    answer = kit.exchange(login)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["refresh_token"])


def a_users_access_token(kit: Kit) -> str:
    login = kit.login()
    return str(kit.exchange(login).json()["access_token"])


TOKENS: list[Any] = [
    pytest.param("issued", machine_token, [], id="issued-its-own-access-token"),
    pytest.param("issued", lambda kit: machine_token(kit, lambda: (client_assertion(), {})), [], id="issued-another-machine-clients-token"),
    pytest.param("issued", a_users_access_token, [], id="issued-a-users-access-token"),
    pytest.param("issued", a_users_refresh_token, [], id="issued-a-users-refresh-token"),
    pytest.param("issued", lambda kit: secrets.token_urlsafe(32), [], id="issued-a-random-string"),
    pytest.param("upstream", upstream_machine_token, ["access_token"], id="upstream-the-idps-machine-token"),
    pytest.param("upstream", lambda kit: upstream_machine_token(kit, client_id="someone-else"), [], id="upstream-another-idp-clients-token"),
    pytest.param("upstream", lambda kit: upstream_machine_token(kit, aud="https://other.example/mcp"), [], id="upstream-token-for-another-resource"),
    pytest.param("upstream", a_users_refresh_token, [], id="upstream-a-users-refresh-token"),
    pytest.param("upstream", lambda kit: secrets.token_urlsafe(32), [], id="upstream-a-random-string"),
]


@pytest.mark.parametrize(("mode", "build", "forwarded_hints"), TOKENS)
def test_a_machine_clients_revocation_reaches_the_idp_only_with_the_idps_token_for_the_shims_client(
    mode: TokenMode, build: Callable[[Kit], str], forwarded_hints: list[str]
) -> None:
    kit = machine_kit(mode)
    forms = RevocationForms(kit)
    token = build(kit)
    response = revoke(kit, token, reporter_basic)
    assert response.status_code == 200, response.text
    assert [(form["token"], form.get("token_type_hint")) for form in forms.forms] == [(token, hint) for hint in forwarded_hints]


def test_a_machine_clients_issued_access_token_stays_valid_after_revocation_until_it_expires() -> None:
    kit = machine_kit("issued")
    token = machine_token(kit)
    assert revoke(kit, token, reporter_basic).status_code == 200
    access = anyio.run(kit.shim.verifier.verify_token, token)
    assert isinstance(access, IssuedAccessToken)
    assert access.client_id == "reporter"


# -- metadata ------------------------------------------------------------------------------------

METADATA: list[Any] = [
    pytest.param(
        (MachineClient("reporter", client_secret=SECRET, mode="upstream"),),
        ["none", "client_secret_basic", "client_secret_post"],
        False,
        id="secret-clients",
    ),
    pytest.param(
        (MachineClient("reporter", client_secret=SECRET, mode="upstream"), MachineClient("signer", jwks=jwks(EC_KEY), mode="upstream")),
        ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        True,
        id="secret-and-key-clients",
    ),
]


@pytest.mark.parametrize(("clients", "methods", "signed"), METADATA)
def test_metadata_offers_the_machine_clients_methods_at_revocation_as_at_the_token_endpoint(
    clients: tuple[MachineClient, ...], methods: list[str], signed: bool
) -> None:
    kit = make_kit(machine_clients=clients)
    doc = kit.client.get("/.well-known/oauth-authorization-server").json()
    assert doc["revocation_endpoint_auth_methods_supported"] == doc["token_endpoint_auth_methods_supported"] == methods
    algorithms = doc.get("revocation_endpoint_auth_signing_alg_values_supported")
    assert algorithms == (doc["token_endpoint_auth_signing_alg_values_supported"] if signed else None)
    assert not signed or "ES256" in algorithms

"""Machine clients: who may use client_credentials and jwt-bearer, and how they authenticate.

The accepted requests are the ones the mcp SDK's own providers build
(``ClientCredentialsOAuthProvider``, ``PrivateKeyJWTOAuthProvider`` with
``SignedJWTParameters``, ``IdentityAssertionOAuthProvider``), taken off the wire format they
produce (form body and Authorization header).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest
from joserfc.jwk import RSAKey

from mcp_oauth_shim.errors import InvalidClientError, InvalidRequestError, InvalidScopeError, UnauthorizedClientError
from mcp_oauth_shim.id_jag import EnterpriseIdP, IdJagVerifier
from mcp_oauth_shim.machine_clients import MachineClient, MachineClients
from mcp_oauth_shim.sealing import CLIENT as CLIENT_PURPOSE
from mcp_oauth_shim.sealing import Sealer
from mcp_oauth_shim.rfc7523 import JWT_BEARER_CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE, MemoryReplayGuard
from tests.peers.id_jag_issuer import IdJagIssuer

from .assertion_kit import AS_ISSUER, EC_KEY, NOW, RESOURCE, TOKEN_ENDPOINT, claims, hs256_with_public_key, jwks, sign

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-of-the-reporting-job-0123"
SDK_RSA = RSAKey.generate_key(2048)
CC = "client_credentials"
# A client_id exactly as the shim's registration endpoint makes one: its registration, sealed.
DCR_CLIENT_ID = Sealer(["k" * 32]).seal(CLIENT_PURPOSE, {"r": ["http://127.0.0.1/cb"], "n": "Some app"})


def registry(clock: Any = None, **kwargs: Any) -> MachineClients:
    clients = [
        MachineClient("reporter", client_secret=SECRET, scopes=("read", "write")),
        MachineClient("hashed", client_secret_sha256=hashlib.sha256(SECRET.encode()).hexdigest(), scopes=("read",)),
        MachineClient("signer", jwks=jwks(EC_KEY), scopes=("read",)),
        MachineClient("sdk-signer", jwks={"keys": [SDK_RSA.as_dict(private=False)]}, scopes=("read",)),
        MachineClient("agent-1", client_secret=SECRET, grant_types=frozenset({JWT_BEARER_GRANT_TYPE}), scopes=("read", "write")),
    ]
    options: dict[str, Any] = {"issuer": AS_ISSUER, "token_endpoint": TOKEN_ENDPOINT, "replay_guard": MemoryReplayGuard()}
    if clock is not None:
        options["clock"] = clock
    return MachineClients(clients, **{**options, **kwargs})


class Store:
    async def get_tokens(self) -> None:
        return None

    async def set_tokens(self, tokens: Any) -> None:
        pass

    async def get_client_info(self) -> None:
        return None

    async def set_client_info(self, info: Any) -> None:
        pass


def wire(request: httpx2.Request) -> tuple[dict[str, str], str | None]:
    return dict(parse_qsl(request.content.decode())), request.headers.get("authorization")


async def sdk_client_credentials_request(method: str, client_id: str = "reporter", secret: str = SECRET) -> httpx2.Request:
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
    from mcp.shared.auth import OAuthMetadata

    provider = ClientCredentialsOAuthProvider(
        server_url=RESOURCE, storage=Store(), client_id=client_id, client_secret=secret,
        token_endpoint_auth_method=method, scope="read", issuer=AS_ISSUER,  # type: ignore[arg-type]
    )
    await provider._initialize()
    provider.context.oauth_metadata = OAuthMetadata(
        issuer=AS_ISSUER, authorization_endpoint=f"{AS_ISSUER}/oauth/authorize", token_endpoint=TOKEN_ENDPOINT
    )
    return await provider._exchange_token_client_credentials()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_sdk_client_credentials_request_authenticates(method: str) -> None:
    form, authorization = wire(await sdk_client_credentials_request(method))
    assert form["grant_type"] == CC
    authenticated = await registry().authenticate(form, authorization, grant_type=CC)
    assert (authenticated.client.client_id, authenticated.method) == ("reporter", method)
    assert authenticated.client.granted_scopes(form.get("scope")) == ("read",)


async def test_sdk_private_key_jwt_request_authenticates() -> None:
    from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters
    from mcp.shared.auth import OAuthMetadata

    params = SignedJWTParameters(issuer="sdk-signer", subject="sdk-signer", signing_key=SDK_RSA.as_pem(private=True).decode())
    provider = PrivateKeyJWTOAuthProvider(
        server_url=RESOURCE, storage=Store(), client_id="sdk-signer",
        assertion_provider=params.create_assertion_provider(), scope="read", issuer=AS_ISSUER,
    )
    await provider._initialize()
    provider.context.oauth_metadata = OAuthMetadata(
        issuer=AS_ISSUER, authorization_endpoint=f"{AS_ISSUER}/oauth/authorize", token_endpoint=TOKEN_ENDPOINT
    )
    form, authorization = wire(await provider._exchange_token_client_credentials())
    assert form["client_assertion_type"] == JWT_BEARER_CLIENT_ASSERTION_TYPE and "client_id" not in form
    authenticated = await registry().authenticate(form, authorization, grant_type=CC)
    assert (authenticated.client.client_id, authenticated.method) == ("sdk-signer", "private_key_jwt")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_sdk_identity_assertion_request_authenticates_and_its_id_jag_verifies(method: str) -> None:
    from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider

    idp = IdJagIssuer("https://idp.example")

    async def assertion_provider(audience: str, resource: str) -> str:
        return idp.id_jag(subject="U1", client_id="agent-1", audience=audience, resource=resource, scope="read")

    provider = IdentityAssertionOAuthProvider(
        server_url=RESOURCE, storage=Store(), client_id="agent-1", client_secret=SECRET, issuer=AS_ISSUER,
        assertion_provider=assertion_provider, scope="read", token_endpoint_auth_method=method,  # type: ignore[arg-type]
    )
    provider._token_endpoint = TOKEN_ENDPOINT
    assertion = await assertion_provider(AS_ISSUER, provider._resource)
    form, authorization = wire(provider._build_token_request("read", assertion))
    assert form["grant_type"] == JWT_BEARER_GRANT_TYPE
    authenticated = await registry().authenticate(form, authorization, grant_type=JWT_BEARER_GRANT_TYPE)
    verifier = IdJagVerifier(
        issuer=AS_ISSUER, resource=RESOURCE, idps=[EnterpriseIdP(issuer=idp.issuer, jwks=idp.jwks())],
        replay_guard=MemoryReplayGuard(),
    )
    grant = await verifier.verify(form["assertion"], client_id=authenticated.client.client_id)
    assert (grant.subject, grant.granted_scopes(form.get("scope"))) == ("U1", ("read",))


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assertion_form(token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": CC, "client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE, "client_assertion": token, **extra}


SIGNER = {"iss": "signer", "sub": "signer"}

REFUSED: list[Any] = [
    # (form, authorization, grant_type, error class, status)
    pytest.param({"grant_type": CC}, basic("reporter", "wrong"), CC, InvalidClientError, 401, id="wrong-secret-basic"),
    pytest.param({"client_id": "reporter", "client_secret": "wrong"}, None, CC, InvalidClientError, 400, id="wrong-secret-post"),
    pytest.param({"client_id": "hashed", "client_secret": "wrong"}, None, CC, InvalidClientError, 400, id="wrong-secret-hashed"),
    pytest.param({"client_id": "reporter"}, None, CC, InvalidClientError, 400, id="no-secret"),
    pytest.param({}, None, CC, InvalidClientError, 400, id="no-client-at-all"),
    pytest.param({"client_id": "unknown"}, None, CC, UnauthorizedClientError, 400, id="unknown-client"),
    pytest.param({"client_id": "https://app.example/client.json"}, None, CC, UnauthorizedClientError, 400, id="metadata-document-client"),
    pytest.param({"client_id": DCR_CLIENT_ID}, None, CC, UnauthorizedClientError, 400, id="dynamically-registered-client"),
    pytest.param({"client_id": "agent-1", "client_secret": SECRET}, None, CC, UnauthorizedClientError, 400, id="grant-not-registered"),
    pytest.param({"client_id": "reporter", "client_secret": SECRET}, None, JWT_BEARER_GRANT_TYPE, UnauthorizedClientError, 400, id="jwt-bearer-not-registered"),
    pytest.param({"client_id": "signer", "client_secret": SECRET}, None, CC, InvalidClientError, 400, id="secret-for-key-client"),
    pytest.param(assertion_form(sign(claims(iss="reporter", sub="reporter"))), None, CC, InvalidClientError, 400, id="assertion-for-secret-client"),
    pytest.param({**assertion_form(sign(claims(**SIGNER))), "client_assertion_type": "urn:x"}, None, CC, InvalidClientError, 400, id="assertion-type-wrong"),
    pytest.param({"client_assertion_type": JWT_BEARER_CLIENT_ASSERTION_TYPE}, None, CC, InvalidClientError, 400, id="assertion-missing"),
    pytest.param(assertion_form(sign(claims(**SIGNER)), client_secret=SECRET), None, CC, InvalidRequestError, 400, id="assertion-and-secret"),
    pytest.param(assertion_form(sign(claims(**SIGNER))), basic("signer", SECRET), CC, InvalidRequestError, 400, id="assertion-and-basic"),
    pytest.param(assertion_form(sign(claims(iss="other", sub="signer"))), None, CC, InvalidClientError, 400, id="assertion-iss-not-sub"),
    pytest.param(assertion_form(sign(claims(**SIGNER)), client_id="reporter"), None, CC, InvalidClientError, 400, id="assertion-sub-not-client-id"),
    pytest.param(assertion_form(sign(claims(**SIGNER, aud="https://evil.example"))), None, CC, InvalidClientError, 400, id="assertion-aud-wrong"),
    pytest.param(assertion_form(sign(claims(**SIGNER, exp=NOW - 100))), None, CC, InvalidClientError, 400, id="assertion-expired"),
    pytest.param(assertion_form(sign(claims(**SIGNER, exp=NOW + 3600))), None, CC, InvalidClientError, 400, id="assertion-lifetime"),
    pytest.param(assertion_form(sign(claims(**SIGNER, jti=...))), None, CC, InvalidClientError, 400, id="assertion-no-jti"),
    pytest.param(assertion_form(hs256_with_public_key(claims(**SIGNER), key=EC_KEY)), None, CC, InvalidClientError, 400, id="assertion-hs256"),
    pytest.param(assertion_form("not.a.jwt"), None, CC, InvalidClientError, 400, id="assertion-garbage"),
    pytest.param(assertion_form(sign(claims(iss="unknown", sub="unknown"))), None, CC, UnauthorizedClientError, 400, id="assertion-unknown-client"),
]


@pytest.mark.parametrize(("form", "authorization", "grant_type", "error", "status"), REFUSED)
async def test_bad_client_authentication_is_refused(form: dict[str, str], authorization: str | None, grant_type: str, error: type, status: int) -> None:
    with pytest.raises(error) as refused:
        await registry(clock=lambda: float(NOW)).authenticate(form, authorization, grant_type=grant_type)
    assert refused.value.status_code == status
    assert SECRET not in (refused.value.description or "")


async def test_client_assertion_is_single_use() -> None:
    clients = registry(clock=lambda: float(NOW))
    form = assertion_form(sign(claims(**SIGNER)))
    assert (await clients.authenticate(form, None, grant_type=CC)).method == "private_key_jwt"
    with pytest.raises(InvalidClientError) as refused:
        await clients.authenticate(form, None, grant_type=CC)
    assert refused.value.__cause__.reason == "replayed"


async def test_client_assertion_to_the_token_endpoint_url_is_accepted() -> None:
    form = assertion_form(sign(claims(**SIGNER, aud=TOKEN_ENDPOINT)))
    assert (await registry(clock=lambda: float(NOW)).authenticate(form, None, grant_type=CC)).client.client_id == "signer"


async def test_hashed_secret_authenticates() -> None:
    authenticated = await registry().authenticate({"client_id": "hashed", "client_secret": SECRET}, None, grant_type=CC)
    assert authenticated.client.client_id == "hashed"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, ("read", "write")), ("", ("read", "write")), ("read", ("read",)), ("write read write", ("write", "read"))],
)
def test_granted_scopes_stay_within_the_allowed(requested: str | None, expected: tuple[str, ...]) -> None:
    assert MachineClient("m", client_secret=SECRET, scopes=("read", "write")).granted_scopes(requested) == expected


@pytest.mark.parametrize("requested", ["admin", "read admin", 'read "quoted"'])
def test_scope_outside_the_allowed_is_invalid_scope(requested: str) -> None:
    with pytest.raises(InvalidScopeError):
        MachineClient("m", client_secret=SECRET, scopes=("read", "write")).granted_scopes(requested)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"client_id": ""}, id="empty-id"),
        pytest.param({"client_id": "has space", "client_secret": SECRET}, id="space-in-id"),
        pytest.param({"client_id": "https://app.example/c.json", "client_secret": SECRET}, id="url-id"),
        pytest.param({"client_id": "m"}, id="no-credential"),
        pytest.param({"client_id": "m", "client_secret": SECRET, "jwks": jwks(EC_KEY)}, id="secret-and-keys"),
        pytest.param({"client_id": "m", "client_secret": "short"}, id="short-secret"),
        pytest.param({"client_id": "m", "client_secret_sha256": "ABC"}, id="bad-hash"),
        pytest.param({"client_id": "m", "jwks_uri": "http://keys.example/jwks"}, id="jwks-uri-plain-http"),
        pytest.param({"client_id": "m", "client_secret": SECRET, "scopes": ("bad scope",)}, id="bad-scope"),
        pytest.param({"client_id": "m", "client_secret": SECRET, "grant_types": frozenset({"authorization_code"})}, id="user-grant"),
        pytest.param({"client_id": "m", "client_secret": SECRET, "mode": "other"}, id="bad-mode"),
    ],
)
def test_machine_client_refuses_unsafe_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MachineClient(**kwargs)


def test_secrets_stay_out_of_repr() -> None:
    text = repr(MachineClient("m", client_secret=SECRET)) + repr(MachineClient("h", client_secret_sha256="a" * 64))
    assert SECRET not in text and "a" * 64 not in text


def test_machine_client_ids_are_recognised_exactly() -> None:
    clients = registry()
    assert clients.is_machine_client("reporter")
    assert not clients.is_machine_client("Reporter")
    assert not clients.is_machine_client("https://app.example/client.json")
    assert not clients.is_machine_client(None)


def test_metadata_values_for_the_token_endpoint() -> None:
    clients = registry()
    assert set(clients.auth_methods_supported) == {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert "ES256" in clients.signing_algorithms_supported and "HS256" not in clients.signing_algorithms_supported
    only_secrets = MachineClients(
        [MachineClient("m", client_secret=SECRET)], issuer=AS_ISSUER, token_endpoint=TOKEN_ENDPOINT, replay_guard=MemoryReplayGuard()
    )
    assert only_secrets.signing_algorithms_supported == ()


def test_same_client_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        MachineClients(
            [MachineClient("m", client_secret=SECRET), MachineClient("m", client_secret=SECRET)],
            issuer=AS_ISSUER, token_endpoint=TOKEN_ENDPOINT, replay_guard=MemoryReplayGuard(),
        )

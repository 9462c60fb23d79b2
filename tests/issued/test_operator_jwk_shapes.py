"""Operator signing keys given as JWKs in the shapes key tools export them (WebCrypto's
``exportKey("jwk")`` adds ``key_ops: ["sign"]`` and ``ext``; key managers add ``use``, ``alg``
and their own members): the shim's tokens must verify at its own MCP endpoint, its JWKS must
publish only what a verifier needs, and a key the shim cannot sign with must be refused at
start-up, not on every token request."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mcp_oauth_shim import MachineClient, OAuthShim
from tests.shim.test_machine_grants import PUBLIC_URL, SECRET, UPSTREAM

#: What RFC 7518 §6.2.1, §6.3.1 and RFC 8037 §2 make a public key of each type, plus what the
#: shim adds to name it (RFC 7517 §4.2, §4.4, §4.5).
PUBLISHED = {"EC": {"kty", "crv", "x", "y"}, "RSA": {"kty", "n", "e"}, "OKP": {"kty", "crv", "x"}}
NAMING = {"kid", "alg", "use"}

KEYS = {
    "ec": ECKey.generate_key("P-256", private=True),
    "rsa": RSAKey.generate_key(2048, private=True),
    "ed25519": OKPKey.generate_key("Ed25519", private=True),
}


def jwk(kind: str, **members: Any) -> dict[str, Any]:
    return {**KEYS[kind].as_dict(private=True), **members}


def shim_with(signing_key: dict[str, Any]) -> OAuthShim:
    return OAuthShim(
        public_url=PUBLIC_URL,
        upstream=UPSTREAM,
        secret_keys=["k" * 48],
        issue_tokens=True,
        signing_keys=[signing_key],
        machine_clients=[MachineClient("reporter", client_secret=SECRET, scopes=("notes:read",))],
    )


@pytest.fixture
def served() -> Iterator[Any]:
    clients: list[TestClient] = []

    def serve(shim: OAuthShim) -> TestClient:
        async def mcp(request: Any) -> PlainTextResponse:
            return PlainTextResponse("ok")

        inner = Starlette(routes=[Route("/", mcp, methods=["POST"])])
        app = Starlette(routes=[Mount("/mcp", shim.protect(inner)), *shim.routes])
        client = TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield serve
    for client in clients:
        client.close()


def machine_token(client: TestClient) -> str:
    basic = base64.b64encode(f"reporter:{SECRET}".encode()).decode()
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic " + basic})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


EXPORTED_SHAPES = [
    pytest.param("ec", {"key_ops": ["sign"], "ext": True}, id="webcrypto-ec"),
    pytest.param("rsa", {"key_ops": ["sign"], "ext": True}, id="webcrypto-rsa"),
    pytest.param("ed25519", {"key_ops": ["sign"]}, id="key-ops-ed25519"),
    pytest.param("ec", {"use": "sig", "alg": "ES256", "kid": "ops-1"}, id="use-and-alg"),
]


@pytest.mark.parametrize(("kind", "members"), EXPORTED_SHAPES)
def test_tokens_signed_with_an_exported_operator_jwk_open_the_mcp_endpoint(served: Any, kind: str, members: dict[str, Any]) -> None:
    client = served(shim_with(jwk(kind, **members)))
    answer = client.post("/mcp/", headers={"Authorization": "Bearer " + machine_token(client)})
    assert answer.status_code == 200, answer.headers.get("www-authenticate")


@pytest.mark.parametrize(("kind", "members"), [*EXPORTED_SHAPES, pytest.param("rsa", {"x5u": "https://keys.example/x", "note": "vault item 7"}, id="extra-members")])
def test_jwks_publishes_only_the_public_key_members_of_an_operator_jwk(served: Any, kind: str, members: dict[str, Any]) -> None:
    document = served(shim_with(jwk(kind, **members))).get("/oauth/jwks").json()
    (published,) = document["keys"]
    assert set(published) == PUBLISHED[published["kty"]] | NAMING
    assert published["use"] == "sig"


@pytest.mark.parametrize(
    ("kind", "members", "message"),
    [
        pytest.param("rsa", {"alg": "PS256"}, "PS256", id="rsa-for-ps256"),
        pytest.param("ec", {"alg": "ES384"}, "ES384", id="ec-for-es384"),
        pytest.param("ec", {"use": "enc"}, "use", id="encryption-key"),
        pytest.param("rsa", {"key_ops": ["decrypt"]}, "key_ops", id="key-ops-without-sign"),
        pytest.param("ec", {"key_ops": "sign"}, "key_ops", id="key-ops-not-a-list"),
    ],
)
def test_an_operator_jwk_the_shim_cannot_sign_with_is_refused_at_start(kind: str, members: dict[str, Any], message: str) -> None:
    from mcp_oauth_shim.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=f"signing key #1 .*{message}"):
        shim_with(jwk(kind, **members))

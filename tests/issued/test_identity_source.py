"""Where issued-token mode learns the user: an ID token that names only the user is completed
from UserInfo when UserInfo names the same user; otherwise the verified ID token stands."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.identity import UpstreamTokens
from mcp_oauth_shim.identity_source import UpstreamIdentity
from mcp_oauth_shim.jwks import KeyStore
from mcp_oauth_shim.upstream import UpstreamClient

ISSUER = "https://idp.example.test"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"}, private=True)


def id_token(nonce: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "shim-client", "sub": "user-1", "iat": now, "exp": now + 300, "nonce": nonce}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)


def source(userinfo: httpx.Response) -> UpstreamIdentity:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        if request.url.path == "/userinfo":
            return userinfo
        return httpx.Response(404)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    upstream = Upstream.oidc(
        issuer=ISSUER, client_id="shim-client", client_secret="s", authorization_endpoint=ISSUER + "/authorize",
        token_endpoint=ISSUER + "/token", jwks_uri=ISSUER + "/jwks", userinfo_endpoint=ISSUER + "/userinfo",
        issue_tokens=True,
    )
    client = UpstreamClient(upstream, http=http)
    return UpstreamIdentity(upstream, client, lambda: http, KeyStore(client, clock=time.time))


def resolve(userinfo: httpx.Response) -> tuple[str, str | None]:
    identity = asyncio.run(source(userinfo).resolve(UpstreamTokens("at", id_token("n1"), "n1")))
    return identity.subject, identity.email


def test_userinfo_completes_an_id_token_without_profile_claims() -> None:
    answer = httpx.Response(200, json={"sub": "user-1", "email": "u@example.test"})
    assert resolve(answer) == ("user-1", "u@example.test")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, json={"sub": "someone-else", "email": "x@example.test"}), id="other-user"),
        pytest.param(httpx.Response(500, text="down"), id="server-error"),
        pytest.param(httpx.Response(200, content=json.dumps([1]).encode()), id="not-an-object"),
    ],
)
def test_the_verified_id_token_stands_when_userinfo_cannot_complete_it(answer: httpx.Response) -> None:
    assert resolve(answer) == ("user-1", None)

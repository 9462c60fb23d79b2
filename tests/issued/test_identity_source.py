"""Where issued-token mode learns the user: an ID token that names only the user is completed
from UserInfo when UserInfo names the same user; otherwise the verified ID token stands."""

from __future__ import annotations

import asyncio
import base64
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


def idp(userinfo: httpx.Response, seen: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        if request.url.path == "/userinfo":
            return userinfo
        return httpx.Response(404)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


UPSTREAM = Upstream.oidc(
    issuer=ISSUER, client_id="shim-client", client_secret="s", authorization_endpoint=ISSUER + "/authorize",
    token_endpoint=ISSUER + "/token", jwks_uri=ISSUER + "/jwks", userinfo_endpoint=ISSUER + "/userinfo",
    issue_tokens=True,
)


def source(userinfo: httpx.Response) -> UpstreamIdentity:
    client = UpstreamClient(UPSTREAM, http=idp(userinfo))
    return UpstreamIdentity(UPSTREAM, client, KeyStore(client, clock=time.time))


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


def test_identity_lookups_travel_on_the_transport_the_upstream_client_uses_now() -> None:
    """One way to the IdP: UserInfo goes where the token POSTs go, the pool by default or an
    httpx client assigned to the upstream client later (as the doctor and tests do)."""
    client = UpstreamClient(UPSTREAM)
    identity = UpstreamIdentity(UPSTREAM, client, KeyStore(client, clock=time.time))
    seen: list[httpx.Request] = []
    client.http = idp(httpx.Response(200, json={"sub": "user-1", "email": "u@example.test"}), seen)
    resolved = asyncio.run(identity.resolve(UpstreamTokens("upstream-at", id_token("n1"), "n1")))
    assert resolved.email == "u@example.test"
    userinfo = [r for r in seen if r.url.path == "/userinfo"]
    assert [r.headers["authorization"] for r in userinfo] == ["Bearer upstream-at"]


def test_by_default_identity_lookups_share_the_keep_alive_pool_of_the_token_posts() -> None:
    """Without an httpx client the UserInfo GET goes on the shim's own pool (no second HTTP
    client per login): it arrives as the pool writes requests, without httpx's User-Agent."""
    received: list[bytes] = []
    body = json.dumps({"sub": "user-1"}).encode()

    async def run() -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream.oidc(
            issuer=ISSUER, client_id="shim-client", client_secret="s", authorization_endpoint=ISSUER + "/authorize",
            token_endpoint=ISSUER + "/token", userinfo_endpoint=f"http://127.0.0.1:{port}/userinfo",
            identity="userinfo", issue_tokens=True,
        )
        client = UpstreamClient(upstream)
        try:
            identity = await UpstreamIdentity(upstream, client, KeyStore(client, clock=time.time)).resolve(UpstreamTokens("upstream-at"))
        finally:
            await client.aclose()
            server.close()
        return identity.subject

    assert asyncio.run(run()) == "user-1"
    assert received[0].startswith(b"GET /userinfo HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAuthorization: Bearer upstream-at\r\n" in received[0]
    assert b"python-httpx" not in received[0].lower()


def test_a_deeply_nested_id_token_payload_is_no_recursion_error_when_reading_googles_issuer() -> None:
    """Google's ID tokens name one of two issuer spellings; the claimed one is read before the
    signature is checked (the checks then refuse the token), so a hostile payload must not
    raise anything but what the checks expect."""
    from mcp_oauth_shim.config import GOOGLE_ISSUER
    from mcp_oauth_shim.identity_source import _accepted_issuer

    deep = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")
    assert _accepted_issuer(f"e30.{deep}.sig", GOOGLE_ISSUER) == GOOGLE_ISSUER

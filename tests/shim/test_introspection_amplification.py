"""Random bearer tokens must not make the shim call the IdP's introspection endpoint at will.

Through the public surface: ``shim.protect(app)`` (or ``RequireBearer`` with a verifier on a
test clock) in front of an app, an in-process IdP that counts its introspection requests.
A refused token is remembered (by hash, bounded, for ``refusal_cache_ttl``), concurrent
requests with one token share one introspection, and IdPs whose access tokens are always JWTs
never see an introspection request for a random string.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.protect import RequireBearer
from mcp_oauth_shim.verify import BearerVerifier

from .counting_idp import RESOURCE, SHIM_URL, CountingIdP, RequestsIn

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    access = scope["user"].access_token
    await JSONResponse({"client_id": access.client_id, "scopes": access.scopes})(scope, receive, send)


def oidc(idp: CountingIdP) -> Upstream:
    return Upstream.oidc(issuer=idp.issuer, client_id="shim-client", client_secret="shim-secret", audience=RESOURCE)


def opaque() -> str:
    return secrets.token_urlsafe(32)


def http(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SHIM_URL)


async def call(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/mcp", headers={"Authorization": f"Bearer {token}"}, json={})


def guarded(idp: CountingIdP, clock: Clock, **options: Any) -> tuple[RequireBearer, BearerVerifier]:
    """``RequireBearer`` around ``whoami`` with the shim's own upstream client, on a test clock."""
    shim = idp.shim(oidc(idp))
    verifier = BearerVerifier(
        shim.upstream_client, audience=RESOURCE, resource_metadata_url=shim.resource_metadata_url, clock=clock, **options
    )
    return RequireBearer(whoami, verifier), verifier


async def test_fifty_requests_with_five_random_tokens_cost_five_introspections() -> None:
    idp = CountingIdP()
    shim = idp.shim(oidc(idp))
    tokens = [opaque() for _ in range(5)]
    async with http(shim.protect(whoami)) as client:
        answers = [await call(client, tokens[n % 5]) for n in range(50)]
    assert {a.status_code for a in answers} == {401}
    assert idp.requests["introspect"] == 5
    assert sorted(idp.introspected) == sorted(tokens)


async def test_a_refused_token_repeated_within_the_refusal_ttl_costs_nothing() -> None:
    idp = CountingIdP()
    shim = idp.shim(oidc(idp))
    token = opaque()
    async with http(shim.protect(whoami)) as client:
        await call(client, token)
        before = idp.requests["introspect"]
        for _ in range(20):
            assert (await call(client, token)).status_code == 401
    assert (before, idp.requests["introspect"]) == (1, 1)


async def test_the_remembered_refusal_keeps_its_rfc6750_challenge() -> None:
    idp = CountingIdP()
    shim = idp.shim(oidc(idp))
    token = opaque()
    async with http(shim.protect(whoami)) as client:
        first, again = await call(client, token), await call(client, token)
    for response in (first, again):
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert f'resource_metadata="{shim.resource_metadata_url}"' in challenge
        assert response.json()["error_description"] == "The access token is not active."


async def test_a_refused_token_is_asked_about_again_after_the_refusal_ttl() -> None:
    idp, clock = CountingIdP(), Clock()
    guard, _ = guarded(idp, clock, refusal_cache_ttl=10)
    token = opaque()
    async with http(guard) as client:
        await call(client, token)
        clock.now += 9
        await call(client, token)
        assert idp.requests["introspect"] == 1
        clock.now += 2
        idp.active[token] = {"active": True, "aud": RESOURCE, "sub": "user-1", "client_id": "shim-client", "scope": "files:read"}
        response = await call(client, token)
    assert idp.requests["introspect"] == 2
    assert response.status_code == 200
    assert response.json() == {"client_id": "shim-client", "scopes": ["files:read"]}


async def test_concurrent_requests_with_one_token_share_one_introspection() -> None:
    idp = CountingIdP()
    shim = idp.shim(oidc(idp))
    token = opaque()
    idp.active[token] = {"active": True, "aud": RESOURCE, "sub": "user-1", "scope": "files:read"}
    idp.gate = asyncio.Event()
    async with http(RequestsIn(shim.protect(whoami), idp.gate, expected=20)) as client:
        answers = await asyncio.gather(*(call(client, token) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert idp.requests["introspect"] == 1


async def test_concurrent_requests_with_one_refused_token_share_one_introspection() -> None:
    idp = CountingIdP()
    shim = idp.shim(oidc(idp))
    token = opaque()
    idp.gate = asyncio.Event()
    async with http(RequestsIn(shim.protect(whoami), idp.gate, expected=20)) as client:
        answers = await asyncio.gather(*(call(client, token) for _ in range(20)))
    assert [a.status_code for a in answers] == [401] * 20
    assert idp.requests["introspect"] == 1


PRESETS_WITHOUT_OPAQUE_TOKENS = {
    "auth0": lambda: Upstream.auth0(domain="idp.test", client_id="c", client_secret="s", audience=RESOURCE),
    "keycloak": lambda: Upstream.keycloak(
        base_url="https://idp.test", realm="r", client_id="c", client_secret="s", audience=RESOURCE
    ),
    "okta": lambda: Upstream.okta(domain="idp.test", client_id="c", client_secret="s", audience=RESOURCE),
    "entra": lambda: Upstream.entra(tenant_id="tenant-1", client_id="c", client_secret="s"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS_WITHOUT_OPAQUE_TOKENS))
async def test_presets_whose_access_tokens_are_always_jwts_never_introspect_random_strings(preset: str) -> None:
    upstream = PRESETS_WITHOUT_OPAQUE_TOKENS[preset]()
    assert upstream.issuer is not None
    idp = CountingIdP(upstream.issuer)  # even with an introspection endpoint in its metadata
    shim = idp.shim(upstream)
    async with http(shim.protect(whoami)) as client:
        answers = [await call(client, opaque()) for _ in range(50)]
    assert {a.status_code for a in answers} == {401}
    assert "not a JWT" in answers[0].json()["error_description"]
    assert idp.requests["introspect"] == 0


async def test_the_refusal_cache_is_bounded_and_forgets_the_oldest() -> None:
    idp, clock = CountingIdP(), Clock()
    guard, verifier = guarded(idp, clock, refusal_cache_size=8)
    tokens = [opaque() for _ in range(20)]
    async with http(guard) as client:
        for token in tokens:
            await call(client, token)
        assert len(verifier._refused) == 8
        await call(client, tokens[-1])  # still remembered
        assert idp.requests["introspect"] == 20
        await call(client, tokens[0])  # forgotten: asked again
        assert idp.requests["introspect"] == 21


async def test_the_refusal_cache_is_keyed_by_a_hash_not_the_token() -> None:
    idp, clock = CountingIdP(), Clock()
    guard, verifier = guarded(idp, clock)
    token = opaque()
    async with http(guard) as client:
        await call(client, token)
    assert len(verifier._refused) == 1
    assert hashlib.sha256(token.encode()).digest() in verifier._refused


async def test_the_verified_token_cache_is_bounded_for_introspected_tokens() -> None:
    idp, clock = CountingIdP(), Clock()
    guard, verifier = guarded(idp, clock, cache_size=4)
    tokens = [opaque() for _ in range(10)]
    for token in tokens:
        idp.active[token] = {"active": True, "aud": RESOURCE, "sub": "user-1", "scope": "files:read"}
    async with http(guard) as client:
        for token in tokens:
            assert (await call(client, token)).status_code == 200
        assert len(verifier._cache) == 4
        await call(client, tokens[0])
    assert idp.requests["introspect"] == 11


@pytest.mark.parametrize("odd", ["opaque token", "opaque\ttoken", "opaque\u00e9"], ids=["space", "tab", "latin-1"])
async def test_a_token_no_bearer_header_can_carry_is_verified_but_never_remembered(odd: str) -> None:
    idp, clock = CountingIdP(), Clock()
    guard, verifier = guarded(idp, clock)
    idp.active[odd] = {"active": True, "aud": RESOURCE, "sub": "user-1", "scope": "files:read"}
    assert await verifier.verify_token(odd) is not None  # the SDK's way, no header involved
    assert verifier.remembered(odd) is None
    async with http(guard) as client:
        answer = await client.post("/mcp", headers=[(b"Authorization", b"Bearer " + odd.encode("latin-1"))], json={})
    assert answer.status_code == 400


async def test_an_unreachable_idp_is_not_remembered_as_a_refusal() -> None:
    idp, clock = CountingIdP(), Clock()
    guard, verifier = guarded(idp, clock)
    token = opaque()
    idp.active[token] = {"active": True, "aud": RESOURCE, "sub": "user-1"}

    async with http(guard) as client:
        await call(client, "warm-up-" + opaque())  # discovery cached
        working = verifier.upstream.http
        verifier.upstream.http = httpx.AsyncClient(transport=httpx.MockTransport(_refuse_connection))
        failed = await call(client, token)
        verifier.upstream.http = working
        recovered = await call(client, token)
    assert failed.status_code == 502
    assert recovered.status_code == 200


def _refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)

"""The IdP rotates its signing keys (a new ``kid`` published, the old one dropped), or its JWKS
is down for a while: what the bearer check in front of an MCP endpoint does.

Through ``RequireBearer`` with the shim's own upstream client and a verifier on a test clock,
in front of the loopback IdP of tests/shim/faulty_idp.py (which counts its JWKS requests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.protect import RequireBearer
from mcp_oauth_shim.verify import BearerVerifier

from .faulty_idp import CLIENT_ID, CLIENT_SECRET, FAULTS, FaultyIdP, signing_key

pytestmark = pytest.mark.anyio

SHIM_URL = "http://127.0.0.1:8000"
RESOURCE = SHIM_URL + "/mcp"
# "A few seconds": the age of the cached keys at which a token with an unknown kid must make
# the shim look at the JWKS again.
FEW_SECONDS = 6.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"client_id": scope["user"].access_token.client_id})(scope, receive, send)


@dataclass
class Guarded:
    idp: FaultyIdP
    clock: Clock
    client: httpx.AsyncClient

    async def call(self, token: str) -> httpx.Response:
        return await self.client.post("/mcp", headers={"Authorization": f"Bearer {token}"}, json={})

    def token(self, kid: str | None = None) -> str:
        """An access token issued now (by the test clock), with a fresh ``jti``."""
        now = int(self.clock.now)
        return self.idp.sign(kid, iat=now, exp=now + 600)

    def rotate(self) -> None:
        """The IdP publishes a new key and drops the old one."""
        self.idp.keys = [signing_key("idp-key-2")]


@pytest.fixture
async def guarded() -> AsyncIterator[Guarded]:
    idp = FaultyIdP(RESOURCE)
    await idp.start()
    upstream = Upstream.oidc(issuer=idp.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, audience=RESOURCE, timeout=1.0)
    shim = OAuthShim(public_url=SHIM_URL, resource=RESOURCE, upstream=upstream, secret_keys=["g" * 48])
    clock = Clock()
    verifier = BearerVerifier(
        shim.upstream_client, audience=RESOURCE, resource_metadata_url=shim.resource_metadata_url, clock=clock
    )
    app = RequireBearer(whoami, verifier)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SHIM_URL, timeout=30.0)
    try:
        yield Guarded(idp, clock, client)
    finally:
        await client.aclose()
        await shim.aclose()
        await idp.close()


async def test_a_token_with_the_new_kid_is_accepted_on_first_sight(guarded: Guarded) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.rotate()
    guarded.clock.now += FEW_SECONDS
    answer = await guarded.call(guarded.token())
    assert answer.status_code == 200, answer.text
    assert guarded.idp.requests["jwks"] == 2


async def test_a_token_signed_with_the_dropped_key_is_refused_after_the_rotation(guarded: Guarded) -> None:
    old_token = guarded.token()
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.rotate()
    guarded.clock.now += FEW_SECONDS
    assert (await guarded.call(guarded.token())).status_code == 200
    answer = await guarded.call(old_token)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_many_first_sightings_of_the_new_kid_share_one_jwks_fetch(guarded: Guarded) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.rotate()
    guarded.clock.now += FEW_SECONDS
    answers = await asyncio.gather(*(guarded.call(guarded.token()) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert guarded.idp.requests["jwks"] == 2


async def test_made_up_kids_cost_at_most_one_jwks_fetch_per_interval(guarded: Guarded) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.clock.now += FEW_SECONDS
    answers = [await guarded.call(guarded.token(f"made-up-{n % 3}")) for n in range(30)]
    assert {a.status_code for a in answers} == {401}
    assert guarded.idp.requests["jwks"] <= 2


@pytest.mark.parametrize("fault", ["500", "read timeout", "HTML instead of JSON"])
async def test_known_keys_keep_serving_through_a_jwks_outage(guarded: Guarded, fault: str) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.idp.faults["jwks"] = FAULTS[fault]
    guarded.clock.now += 2 * 3600.0  # past the cached keys' maximum age: a refetch is due
    answer = await guarded.call(guarded.token())
    assert answer.status_code == 200, answer.text


async def test_a_new_kid_during_a_jwks_outage_is_an_idp_error_not_a_bad_token(guarded: Guarded) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.rotate()
    guarded.idp.faults["jwks"] = FAULTS["500"]
    guarded.clock.now += FEW_SECONDS
    answer = await guarded.call(guarded.token())
    assert answer.status_code in (502, 503, 504), answer.text


async def test_a_new_kid_is_accepted_once_the_jwks_is_back(guarded: Guarded) -> None:
    assert (await guarded.call(guarded.token())).status_code == 200
    guarded.rotate()
    guarded.idp.faults["jwks"] = FAULTS["500"]
    guarded.clock.now += FEW_SECONDS
    assert (await guarded.call(guarded.token())).status_code != 200
    await guarded.idp.recover()
    guarded.clock.now += FEW_SECONDS
    answer = await guarded.call(guarded.token())
    assert answer.status_code == 200, answer.text

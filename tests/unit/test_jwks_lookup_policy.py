"""The key store's lookup policy: a rotated key is picked up as soon as the held keys are a few
seconds old, unknown kids never cost more than one JWKS fetch per interval, and concurrent
lookups share one fetch. The IdP is the shim's UpstreamClient on an httpx.MockTransport; time
comes from an injected clock, so nothing waits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from mcp_oauth_shim.bearer_errors import InvalidToken
from mcp_oauth_shim.config import Upstream
from mcp_oauth_shim.jwks import UNKNOWN_KID_REFETCH_AFTER, KeyStore
from mcp_oauth_shim.upstream import UpstreamClient

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
_MATERIAL = RSAKey.generate_key(2048, private=True)


def key(kid: str) -> RSAKey:
    return RSAKey.import_key({**_MATERIAL.as_dict(private=False), "kid": kid})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class RotatingIdP:
    """Discovery and a JWKS whose keys the test changes; counts JWKS fetches."""

    def __init__(self) -> None:
        self.kids = ["k1"]
        self.fetches = 0
        self.gate: asyncio.Event | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            doc = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "a", "token_endpoint": ISSUER + "t"}
            return httpx.Response(200, json={**doc, "jwks_uri": ISSUER + "jwks"})
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        return httpx.Response(200, json={"keys": [key(k).as_dict(private=False) for k in self.kids]})


@pytest.fixture
def idp() -> RotatingIdP:
    return RotatingIdP()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(idp: RotatingIdP, clock: Clock):
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    config = Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="s")
    yield KeyStore(UpstreamClient(config, http=http), clock=clock)
    await http.aclose()


@pytest.mark.parametrize("age", [UNKNOWN_KID_REFETCH_AFTER, UNKNOWN_KID_REFETCH_AFTER + 1, 60.0])
async def test_a_rotated_key_is_picked_up_once_the_held_keys_are_older_than_the_interval(
    store: KeyStore, idp: RotatingIdP, clock: Clock, age: float
) -> None:
    await store.key_for("k1", "RS256")
    idp.kids = ["k2"]
    clock.now += age
    assert (await store.key_for("k2", "RS256")).kid == "k2"
    assert idp.fetches == 2


async def test_an_unknown_kid_within_the_interval_does_not_refetch(
    store: KeyStore, idp: RotatingIdP, clock: Clock
) -> None:
    await store.key_for("k1", "RS256")
    idp.kids = ["k2"]
    clock.now += UNKNOWN_KID_REFETCH_AFTER - 0.5
    with pytest.raises(InvalidToken, match="does not publish"):
        await store.key_for("k2", "RS256")
    assert idp.fetches == 1


async def test_a_flood_of_made_up_kids_costs_at_most_one_fetch_per_interval(
    store: KeyStore, idp: RotatingIdP, clock: Clock
) -> None:
    await store.key_for("k1", "RS256")
    intervals = 4
    for interval in range(intervals):
        clock.now += UNKNOWN_KID_REFETCH_AFTER
        for n in range(50):
            with pytest.raises(InvalidToken):
                await store.key_for(f"made-up-{interval}-{n}", "RS256")
            clock.now += UNKNOWN_KID_REFETCH_AFTER / 100  # the flood goes on within the interval
    assert idp.fetches == 1 + intervals


async def test_concurrent_unknown_kid_tokens_share_one_fetch(store: KeyStore, idp: RotatingIdP, clock: Clock) -> None:
    await store.key_for("k1", "RS256")
    idp.kids = ["k1", "k2"]
    clock.now += UNKNOWN_KID_REFETCH_AFTER
    idp.gate = asyncio.Event()
    lookups = [asyncio.ensure_future(store.key_for("k2", "RS256")) for _ in range(20)]
    await asyncio.sleep(0.01)  # every lookup is waiting on the one fetch now
    idp.gate.set()
    found: list[Any] = await asyncio.gather(*lookups)
    assert {k.kid for k in found} == {"k2"}
    assert idp.fetches == 2


def test_the_interval_cannot_be_configured_longer_than_five_seconds(clock: Clock) -> None:
    config = Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="s")
    assert KeyStore(UpstreamClient(config), refetch_after=30.0, clock=clock).refetch_after == UNKNOWN_KID_REFETCH_AFTER

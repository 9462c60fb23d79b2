"""Which address the per-address rate limits count: the connection's peer (never a header the
caller writes), and for IPv6 the peer's /64, since one host or home network holds a whole /64
and can send each request from a new address in it."""

from __future__ import annotations

import ipaddress
import random

import httpx
import pytest

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.strict import RateLimit, RateLimits, StrictMode
from mcp_oauth_shim.strict.checks import client_address
from starlette.requests import Request

from .shim_replicas import CLIENT_REDIRECT, PUBLIC_URL, SECRET_KEY, make_idp

pytestmark = pytest.mark.anyio


def request_from(peer: tuple[str, int] | None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": peer})


@pytest.mark.parametrize(
    ("peer", "counted"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        # A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6: still one IPv4 address each.
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.8", "198.51.100.8"),
        # Not an IP address (a proxy's "unknown", a Unix socket's path): counted as it is.
        ("unknown", "unknown"),
    ],
)
def test_the_counted_address_is_the_peer_or_its_ipv6_64(peer: str, counted: str) -> None:
    assert client_address(request_from((peer, 50000))) == counted


def by_ipaddress(peer: str) -> str:
    """What client_address computes, with the standard library's ipaddress module."""
    address = ipaddress.IPv6Address(peer)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


def test_the_counted_ipv6_address_is_what_ipaddress_computes() -> None:
    draw = random.Random(20261205)
    peers = [str(ipaddress.IPv6Address(draw.getrandbits(128))) for _ in range(500)]
    peers += [str(ipaddress.IPv6Address(draw.getrandbits(64) << 64)) for _ in range(100)]  # host part zero
    peers += [f"::ffff:{ipaddress.IPv4Address(draw.getrandbits(32))}" for _ in range(100)]
    peers += [ipaddress.IPv6Address(draw.getrandbits(128)).exploded.upper() for _ in range(100)]
    peers += ["::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "64:ff9b::198.51.100.7"]
    assert [client_address(request_from((peer, 50000))) for peer in peers] == [by_ipaddress(peer) for peer in peers]


def test_a_request_without_a_peer_is_counted_as_unknown() -> None:
    assert client_address(request_from(None)) == "unknown"


def one_registration_a_minute() -> OAuthShim:
    idp = make_idp()
    return OAuthShim(
        public_url=PUBLIC_URL,
        upstream=idp.upstream(),
        secret_keys=[SECRET_KEY],
        http_client=idp.http(),
        strict=StrictMode.in_memory(rate_limits=RateLimits(register_ip=RateLimit(1, 60.0))),
    )


async def register(shim: OAuthShim, address: str, headers: dict[str, str] | None = None) -> int:
    transport = httpx.ASGITransport(app=shim.app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        answer = await http.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}, headers=headers)
        return answer.status_code


async def test_new_addresses_from_one_ipv6_64_share_its_limit() -> None:
    shim = one_registration_a_minute()
    statuses = [await register(shim, f"2001:db8:1:2::{n:x}") for n in range(1, 4)]
    elsewhere = await register(shim, "2001:db8:1:3::1")
    assert statuses == [201, 429, 429]
    assert elsewhere == 201


@pytest.mark.parametrize(
    "spoofed",
    [
        {"X-Forwarded-For": "203.0.113.{n}"},
        {"Forwarded": "for=203.0.113.{n}"},
        {"X-Real-IP": "203.0.113.{n}"},
    ],
    ids=["x-forwarded-for", "forwarded", "x-real-ip"],
)
async def test_a_proxy_header_from_the_caller_does_not_change_the_counted_address(spoofed: dict[str, str]) -> None:
    """The ASGI server rewrites the peer from a proxy header only for proxies the operator
    trusts (uvicorn ``--forwarded-allow-ips``); the shim itself never reads one."""
    shim = one_registration_a_minute()
    statuses = []
    for n in range(1, 4):
        headers = {name: value.format(n=n) for name, value in spoofed.items()}
        statuses.append(await register(shim, "198.51.100.7", headers))
    assert statuses == [201, 429, 429]


async def test_made_up_client_ids_at_the_authorization_endpoint_still_count_against_the_address() -> None:
    idp = make_idp()
    limits = RateLimits(authorize_ip=RateLimit(2, 60.0), authorize_client_ip=RateLimit(1, 60.0))
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        upstream=idp.upstream(),
        secret_keys=[SECRET_KEY],
        http_client=idp.http(),
        strict=StrictMode.in_memory(rate_limits=limits),
    )
    transport = httpx.ASGITransport(app=shim.app, client=("198.51.100.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        statuses = [(await http.get("/oauth/authorize", params={"client_id": f"made-up-{n}"})).status_code for n in range(3)]
    assert statuses == [400, 400, 429]

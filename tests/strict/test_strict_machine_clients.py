"""Machine clients (``client_credentials``, RFC 6749 §4.4) in strict mode: their token requests
count against the caller's address like every other token request, and once the client has
authenticated, against that client at that address (``token_client_ip``)."""

from __future__ import annotations

import base64

import httpx
import pytest

from mcp_oauth_shim import MachineClient
from mcp_oauth_shim.strict import RateLimit, RateLimits, StrictMode
from tests.shim.test_machine_grants import MACHINE_CLIENTS, PUBLIC_URL, SECRET, machine_shim

pytestmark = pytest.mark.anyio


async def client_credentials(http: httpx.AsyncClient, client_id: str, secret: str = SECRET) -> int:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic " + basic}
    )
    return answer.status_code


async def test_machine_client_token_requests_count_against_the_address() -> None:
    limits = RateLimits(token_ip=RateLimit(2, 60.0), token_client_ip=None)
    shim = machine_shim(strict=StrictMode.in_memory(rate_limits=limits))
    transport = httpx.ASGITransport(app=shim.app, client=("198.51.100.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        statuses = [await client_credentials(http, "reporter") for _ in range(3)]
    assert statuses == [200, 200, 429]


def per_client_shim() -> httpx.AsyncClient:
    """Two machine clients with secrets, at most 2 token requests per client and address."""
    limits = RateLimits(token_ip=None, token_client_ip=RateLimit(2, 60.0))
    clients = (*MACHINE_CLIENTS, MachineClient("auditor", client_secret=SECRET, scopes=("notes:read",)))
    shim = machine_shim(strict=StrictMode.in_memory(rate_limits=limits), machine_clients=clients)
    transport = httpx.ASGITransport(app=shim.app, client=("198.51.100.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)


async def test_machine_client_token_requests_count_against_the_client_at_its_address() -> None:
    async with per_client_shim() as http:
        statuses = [await client_credentials(http, "reporter") for _ in range(3)]
        other = await client_credentials(http, "auditor")
    assert statuses == [200, 200, 429]
    assert other == 200  # another client at the same address has its own count


async def test_a_machine_client_that_fails_to_authenticate_is_not_counted_for_the_client() -> None:
    async with per_client_shim() as http:
        refused = [await client_credentials(http, "reporter", secret="wrong-" + SECRET) for _ in range(3)]
        statuses = [await client_credentials(http, "reporter") for _ in range(2)]
    assert refused == [401, 401, 401]
    assert statuses == [200, 200]

"""Machine clients (``client_credentials``, RFC 6749 §4.4) in strict mode: their token requests
count against the caller's address like every other token request."""

from __future__ import annotations

import base64

import httpx
import pytest

from mcp_oauth_shim.strict import RateLimit, RateLimits, StrictMode
from tests.shim.test_machine_grants import PUBLIC_URL, SECRET, machine_shim

pytestmark = pytest.mark.anyio


async def client_credentials(http: httpx.AsyncClient, client_id: str) -> int:
    basic = base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()
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

"""The doctor against a real loopback IdP that drips its answers: every check ends within the
timeout it was given (a finding, never a hang), whichever httpx client carries it."""

from __future__ import annotations

import asyncio
import json

import anyio
import httpx
import pytest

from mcp_oauth_shim.doctor import DoctorInput, diagnose
from tests.dripping import dripping_json

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5  # seconds: the doctor's timeout
HANG_GUARD = 10  # a liveness guard only: the dripped body below takes ~40 s to arrive


# A 200 whose body arrives one byte every 0.1 s: each read is well within the timeout, the
# whole far beyond it.
dripped_discovery = dripping_json(b'{"issuer": "' + b"x" * 400 + b'"}')


@pytest.mark.parametrize("client", ["doctor's own", "operator's"])
async def test_a_discovery_document_dripped_byte_by_byte_fails_within_the_timeout(client: str) -> None:
    server = await asyncio.start_server(dripped_discovery, "127.0.0.1", 0)
    issuer = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = None if client == "doctor's own" else httpx.AsyncClient(timeout=TIMEOUT)
    try:
        with anyio.fail_after(HANG_GUARD):
            findings = await diagnose(DoctorInput(issuer=issuer), http=http, timeout=TIMEOUT)
    finally:
        if http is not None:
            await http.aclose()
        server.close()
    failures = [f for f in findings if f.level == "FAIL"]
    assert failures and failures[0].check == "discovery"


@pytest.mark.parametrize(
    "jwks_uri", ["http://[::1/jwks", "http://127.0.0.1:99999/jwks", "http://\u20ac.example/jwks"],
    ids=["unclosed-ip-literal", "port-out-of-range", "non-ascii-host"],
)
async def test_a_discovered_url_httpx_cannot_use_is_a_finding_not_a_crash(jwks_uri: str) -> None:
    async def discovery(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        document = {"issuer": issuer, "authorization_endpoint": f"{issuer}/a", "token_endpoint": f"{issuer}/t", "jwks_uri": jwks_uri}
        body = json.dumps(document).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(discovery, "127.0.0.1", 0)
    issuer = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        with anyio.fail_after(HANG_GUARD):
            findings = await diagnose(DoctorInput(issuer=issuer), timeout=TIMEOUT)
    finally:
        server.close()
    assert any(f.level in ("FAIL", "WARN") and "jwks" in f.check.lower() for f in findings), findings

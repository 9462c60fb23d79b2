"""Call an MCP server as a machine, with the mcp SDK's own client credentials provider.

    export NIGHTLY_REPORT_SECRET=...   # the secret the operator gave this job
    python examples/machine_client_call.py http://127.0.0.1:8000/mcp

The SDK finds the authorization server (RFC 9728, RFC 8414), asks for a token with the
``client_credentials`` grant (``client_secret_basic``), and calls the ``whoami`` tool. For an
enterprise user instead, see ``IdentityAssertionOAuthProvider`` in
docs/enterprise-managed-authorization.md.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx2
from mcp.client import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.types import TextContent


class MemoryTokens:
    """Where the SDK keeps the token between calls (a job run needs nothing more)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def whoami(mcp_url: str, client_id: str, client_secret: str, *, issuer: str | None = None) -> dict[str, Any]:
    """The ``whoami`` tool's answer, called as the machine client ``client_id``.

    ``issuer``: the authorization server these credentials belong to (the SDK then refuses to
    send them anywhere else); default: the MCP server's origin.
    """
    provider = ClientCredentialsOAuthProvider(
        server_url=mcp_url,
        storage=MemoryTokens(),
        client_id=client_id,
        client_secret=client_secret,
        issuer=issuer or mcp_url.rsplit("/", 1)[0],
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(mcp_url, http_client=http)) as session,
    ):
        result = await session.call_tool("whoami")
    content = result.content[0]
    if result.is_error or not isinstance(content, TextContent):
        raise RuntimeError(f"whoami failed: {result}")
    return dict(json.loads(content.text))


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/mcp"
    secret = os.environ.get("NIGHTLY_REPORT_SECRET") or sys.exit("Set NIGHTLY_REPORT_SECRET.")
    print(anyio.run(whoami, url, "nightly-report", secret))

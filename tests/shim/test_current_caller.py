"""`current_caller()` in a tool of the `mcp` SDK's `MCPServer` behind `shim.protect`: the SDK's
`get_access_token()` hands the tool the verifier's token (the issued-token subclass included),
and the caller's identity and IdP token come from it.

A real MCPServer on a loopback uvicorn, the real SDK client, the shim's real verifiers: the
IdP's own JWTs (passthrough) and the shim's issued tokens.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared._httpx_utils import create_mcp_http_client
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth_shim import OAuthShim, UpstreamTokenUnavailable, current_caller
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

pytestmark = pytest.mark.anyio

IDP = TokenIssuer()
IDENTITY = {"name": "Grace Hopper", "email": "grace@example.test"}
GITHUB_TOKEN = "gho_0123456789abcdefghijABCDEFGHIJ012345"


def create_server() -> MCPServer:
    mcp = MCPServer("caller test")

    @mcp.tool()
    def whoami() -> str:
        caller = current_caller()
        return json.dumps(
            {
                "subject": caller.subject,
                "name": caller.name,
                "email": caller.email,
                "client_id": caller.client_id,
                "scopes": list(caller.scopes),
                "issued_by_shim": caller.issued_by_shim,
                "sdk_token_type": type(get_access_token()).__name__,
            }
        )

    @mcp.tool()
    def idp_token() -> str:
        try:
            return current_caller().upstream_access_token()
        except UpstreamTokenUnavailable as unavailable:
            # What the docs show: the refusal's description is safe for the model to read.
            raise ToolError(unavailable.description) from None

    return mcp


@dataclass
class Served:
    url: str
    shim: OAuthShim


@contextlib.contextmanager
def served(*, issue_tokens: bool, stateless: bool) -> Iterator[Served]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    shim = IDP.shim(url, issue_tokens=issue_tokens)
    mcp = create_server()
    host = url.removeprefix("http://")
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        transport_security=TransportSecuritySettings(allowed_hosts=[host], allowed_origins=[url]),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shim.lifespan(app), mcp.session_manager.run():
            yield

    app = Starlette(routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))], lifespan=lifespan)
    with serve_asgi(app, sock) as running:
        yield Served(running.url, shim)


def token_for(server: Served, *, subject: str, upstream: str | None = GITHUB_TOKEN) -> str:
    issued = server.shim.context.issued
    if issued is None:  # passthrough: the IdP's own JWT
        return IDP.token(audience=server.url + "/mcp", scopes=("notes:read",), subject=subject, extra_claims=IDENTITY)
    return issued.tokens.access_token(
        client_id="mcp-client-1", subject=subject, scopes="notes:read", identity_claims=IDENTITY, upstream_access_token=upstream
    )


async def call(server: Served, token: str, tool: str) -> tuple[bool, str]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:  # type: ignore[arg-type]
        result = await client.call_tool(tool, {})
    return bool(result.is_error), result.content[0].text  # type: ignore[union-attr]


MODES = {
    "passthrough-stateful": (False, False),
    "passthrough-stateless": (False, True),
    "issued-stateful": (True, False),
    "issued-stateless": (True, True),
}


@pytest.mark.parametrize(("issue_tokens", "stateless"), MODES.values(), ids=MODES.keys())
async def test_a_tool_reads_the_callers_identity_with_current_caller(issue_tokens: bool, stateless: bool) -> None:
    with served(issue_tokens=issue_tokens, stateless=stateless) as server:
        failed, text = await call(server, token_for(server, subject="grace-7"), "whoami")
    assert not failed, text
    assert json.loads(text) == {
        "subject": "grace-7",
        "name": "Grace Hopper",
        "email": "grace@example.test",
        "client_id": "mcp-client-1" if issue_tokens else "upstream-client",
        "scopes": ["notes:read"],
        "issued_by_shim": issue_tokens,
        "sdk_token_type": "IssuedAccessToken" if issue_tokens else "AccessToken",
    }


@pytest.mark.parametrize("issue_tokens", [False, True], ids=["passthrough", "issued"])
async def test_a_tool_gets_the_idps_token_with_current_caller(issue_tokens: bool) -> None:
    with served(issue_tokens=issue_tokens, stateless=False) as server:
        token = token_for(server, subject="grace-7")
        failed, text = await call(server, token, "idp_token")
    assert not failed, text
    assert text == (GITHUB_TOKEN if issue_tokens else token)


async def test_a_tool_asking_for_an_idp_token_the_token_lacks_gets_a_tool_error_without_secrets() -> None:
    with served(issue_tokens=True, stateless=False) as server:
        token = token_for(server, subject="grace-7", upstream=None)
        failed, text = await call(server, token, "idp_token")
    assert failed
    assert "carries no access token for the identity provider" in text
    assert token not in text


def test_current_caller_outside_an_authenticated_request_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="shim.protect"):
        current_caller()

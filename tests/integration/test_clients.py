"""Real MCP clients log in through the shim to the real IdP and call tools (issue 2).

Every test runs in every setup of tests.peers.idp.CLIENT_SETUPS: an Auth0-like IdP without
RFC 9207 `iss` and with `audience=`, a spec-complete provider with `iss` and `resource=` (both
with the IdP's access tokens passed through), and a Google-like IdP whose opaque access tokens
no resource server can check, in front of which the shim issues its own tokens.
The shim is the only authorization server the clients see; the IdP only knows its callback.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.peers.browser_cli import BrowserCommand
from tests.peers.clients import (  # noqa: F401 - HeadlessUser, MemoryStorage: imported from here by older tests
    MCP_REMOTES,
    REQUEST_TIMEOUT_S,
    SESSION_TIMEOUT_S,
    HeadlessUser,
    McpRemote,
    MemoryStorage,
    SdkClient,
    list_whoami_echo_over_stdio,
    mcp_remote_params,
    sdk_oauth_client,
)
from tests.peers.fixtures import PeerLogs
from tests.peers.mcp_under_test import ShimServer
from tests.peers.procs import tail

pytestmark = pytest.mark.integration


def whoami(result: CallToolResult) -> dict:
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return json.loads(content.text)


def assert_caller_is_the_idp_user(result: CallToolResult, server: ShimServer) -> None:
    """The tool saw the IdP's subject in a token issued for this MCP endpoint: by the IdP when
    it is passed through, by the shim in issued-token mode."""
    caller = whoami(result)
    assert (caller["subject"], caller["iss"], caller["aud"]) == (server.idp.subject, server.token_issuer, server.mcp_url)


# --- the mcp SDK's OAuthClientProvider ------------------------------------------------------


@pytest.fixture
def sdk_client(shim_server: ShimServer, peer_logs: PeerLogs) -> SdkClient:
    client = sdk_oauth_client(shim_server.mcp_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))
    return client


def sdk_session(server: ShimServer, http: httpx2.AsyncClient, mode: str = "legacy") -> Client:
    """An MCP session over Streamable HTTP; "legacy" is the initialize handshake every client
    released before 2026 does, "auto" the 2026-07-28 `server/discover` negotiation."""
    return Client(
        streamable_http_client(server.mcp_url, http_client=http),
        mode=mode,
        read_timeout_seconds=REQUEST_TIMEOUT_S,
    )


def call_whoami(server: ShimServer, client: SdkClient, *, refresh_in_between: bool = False) -> CallToolResult:
    """The `whoami` tool's result for `client`, logged in through `server`. With
    `refresh_in_between`, `whoami` is called once, the access token is made due, and the
    result is that of the second call, which the provider makes after refreshing (RFC 6749 §6)."""

    async def scenario() -> CallToolResult:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with sdk_session(server, http) as session:
                    if refresh_in_between:
                        await session.call_tool("whoami")
                        client.provider.context.token_expiry_time = time.time() - 1
                    return await session.call_tool("whoami")

    return anyio.run(scenario)


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["initialize-handshake", "discover-2026"])
def test_mcp_sdk_client_logs_in_lists_tools_and_calls_whoami(
    shim_server: ShimServer, sdk_client: SdkClient, mode: str
) -> None:
    async def scenario() -> tuple[set[str], CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=sdk_client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with sdk_session(shim_server, http, mode) as session:
                    tools = await session.list_tools()
                    return {tool.name for tool in tools.tools}, await session.call_tool("whoami")

    names, result = anyio.run(scenario)
    assert names == shim_server.tool_names
    assert_caller_is_the_idp_user(result, shim_server)
    assert sdk_client.user.logins == 1


def test_mcp_sdk_client_refreshes_its_token_through_the_shim(shim_server: ShimServer, sdk_client: SdkClient) -> None:
    result = call_whoami(shim_server, sdk_client, refresh_in_between=True)
    assert_caller_is_the_idp_user(result, shim_server)
    first, refreshed = sdk_client.storage.tokens
    assert refreshed.access_token != first.access_token
    assert sdk_client.user.logins == 1, "the client logged in again instead of refreshing"


# --- mcp-remote, a stdio proxy, driven by the mcp SDK's stdio client -------------------------


@pytest.mark.parametrize("remote", MCP_REMOTES, ids=lambda remote: f"mcp-remote-{remote.release}")
def test_mcp_remote_logs_in_and_calls_tools(
    shim_server: ShimServer,
    headless_browser: BrowserCommand,
    peer_logs: PeerLogs,
    tmp_path: Path,
    remote: McpRemote,
) -> None:
    assert remote.installed_release() == remote.release
    stderr_log = tmp_path / "mcp-remote.stderr"
    peer_logs.add(f"mcp-remote {remote.release} (stderr)", lambda: tail(stderr_log, 60))
    params = mcp_remote_params(remote, shim_server.mcp_url, headless_browser, tmp_path)

    names, caller, echoed = list_whoami_echo_over_stdio(params, stderr_log)
    assert names == shim_server.tool_names
    assert_caller_is_the_idp_user(caller, shim_server)
    assert echoed.content == [TextContent(type="text", text="hello through mcp-remote")]

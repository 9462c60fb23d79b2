"""Real MCP clients log in through the shim to the real IdP and call tools (issue 2).

Every test runs against both IdP profiles (conftest.IDP_PROFILES): Auth0-like without RFC 9207
`iss` and with `audience=`, and a spec-complete provider with `iss` and `resource=`. The shim
is the only authorization server the clients see; the IdP only knows the shim's callback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.types import CallToolResult, TextContent

from tests.peers import node
from tests.peers.browser import AuthorizationResponse, LoginTrace, follow_login
from tests.peers.browser_cli import BrowserCommand
from tests.peers.fixtures import PeerLogs
from tests.peers.mcp_under_test import ShimServer
from tests.peers.procs import tail
from tests.peers.servers import free_port

pytestmark = pytest.mark.integration

# Bounds for a whole client session (login included) and for one MCP request.
SESSION_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0


def whoami(result: CallToolResult) -> dict:
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return json.loads(content.text)


def assert_caller_is_the_idp_user(result: CallToolResult, server: ShimServer) -> None:
    """The tool saw the IdP's subject in a token issued by the IdP for this MCP endpoint."""
    caller = whoami(result)
    assert (caller["subject"], caller["iss"], caller["aud"]) == (server.idp.subject, server.idp.issuer, server.mcp_url)


# --- the mcp SDK's OAuthClientProvider ------------------------------------------------------


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage, keeping every token set it was given."""

    tokens: list[OAuthToken] = field(default_factory=list)
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens[-1] if self.tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class HeadlessUser:
    """Plays the user's browser for the SDK: the redirect handler logs in, the callback handler
    hands over what arrived at the redirect URI (RFC 6749 §4.1.2, RFC 9207 `iss`)."""

    redirect_uri: str
    logins: int = 0
    trace: LoginTrace = field(default_factory=LoginTrace)
    _final_url: str | None = None

    async def open(self, authorization_url: str) -> None:
        self.logins += 1
        self._final_url = await anyio.to_thread.run_sync(
            lambda: follow_login(authorization_url, self.redirect_uri, trace=self.trace)
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self._final_url is not None, "the callback ran before the browser reached the redirect URI"
        response = AuthorizationResponse.from_url(self._final_url)
        assert response.error is None and response.code, f"authorization failed: {response.error}"
        return AuthorizationCodeResult(code=response.code, state=response.state, iss=response.iss)


@dataclass
class SdkClient:
    provider: OAuthClientProvider
    storage: MemoryStorage
    user: HeadlessUser


@pytest.fixture
def sdk_client(shim_server: ShimServer, peer_logs: PeerLogs) -> SdkClient:
    # A loopback redirect URI nobody listens on: the headless browser stops in front of it.
    user = HeadlessUser(redirect_uri=f"http://127.0.0.1:{free_port()}/callback")
    peer_logs.add("headless browser (SDK client)", lambda: str(user.trace))
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=shim_server.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp SDK integration test",
            redirect_uris=[user.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.open,
        callback_handler=user.callback,
    )
    return SdkClient(provider=provider, storage=storage, user=user)


def sdk_session(server: ShimServer, http: httpx2.AsyncClient, mode: str = "legacy") -> Client:
    """An MCP session over Streamable HTTP; "legacy" is the initialize handshake every client
    released before 2026 does, "auto" the 2026-07-28 `server/discover` negotiation."""
    return Client(
        streamable_http_client(server.mcp_url, http_client=http),
        mode=mode,
        read_timeout_seconds=REQUEST_TIMEOUT_S,
    )


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
    assert {"whoami", "echo"} <= names
    assert_caller_is_the_idp_user(result, shim_server)
    assert sdk_client.user.logins == 1


def test_mcp_sdk_client_refreshes_its_token_through_the_shim(shim_server: ShimServer, sdk_client: SdkClient) -> None:
    async def scenario() -> CallToolResult:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=sdk_client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with sdk_session(shim_server, http) as session:
                    await session.call_tool("whoami")
                    # The access token is now due: the provider refreshes before the next request.
                    sdk_client.provider.context.token_expiry_time = time.time() - 1
                    return await session.call_tool("whoami")

    result = anyio.run(scenario)
    assert_caller_is_the_idp_user(result, shim_server)
    first, refreshed = sdk_client.storage.tokens
    assert refreshed.access_token != first.access_token
    assert sdk_client.user.logins == 1, "the client logged in again instead of refreshing"


# --- mcp-remote, a stdio proxy, driven by the mcp SDK's stdio client -------------------------


@dataclass(frozen=True)
class McpRemote:
    package: str  # as installed in tests/peers/node_modules
    release: str


MCP_REMOTES = (
    McpRemote("mcp-remote", "0.15.1"),
    # July 2025: the 2025-03-26 era client (no RFC 9728, no `resource`).
    McpRemote("mcp-remote-legacy", "0.1.18"),
)


@pytest.mark.parametrize("remote", MCP_REMOTES, ids=lambda remote: f"mcp-remote-{remote.release}")
def test_mcp_remote_logs_in_and_calls_tools(
    shim_server: ShimServer,
    headless_browser: BrowserCommand,
    peer_logs: PeerLogs,
    tmp_path: Path,
    remote: McpRemote,
) -> None:
    installed = json.loads((node.NODE_MODULES / remote.package / "package.json").read_text())["version"]
    assert installed == remote.release
    stderr_log = tmp_path / "mcp-remote.stderr"
    peer_logs.add(f"mcp-remote {remote.release} (stderr)", lambda: tail(stderr_log, 60))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": node.peer_env()["PATH"],
        "HOME": str(home),
        # A fresh token cache per run: mcp-remote would otherwise reuse an earlier login.
        "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-remote-config"),
        **headless_browser.env(),
    }
    # The callback port is explicit (positional argument after the URL): its default is
    # derived from the server URL and could clash between tests.
    params = StdioServerParameters(
        command=str(node.node_binary()),
        args=[str(node.package_bin(remote.package, "mcp-remote")), shim_server.mcp_url, str(free_port())],
        env=env,
        cwd=str(tmp_path),
    )

    async def scenario() -> tuple[set[str], CallToolResult, CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S), open(stderr_log, "w") as errlog:
            async with Client(
                stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=SESSION_TIMEOUT_S
            ) as session:
                tools = await session.list_tools()
                return (
                    {tool.name for tool in tools.tools},
                    await session.call_tool("whoami"),
                    await session.call_tool("echo", {"text": "hello through mcp-remote"}),
                )

    names, caller, echoed = anyio.run(scenario)
    assert {"whoami", "echo"} <= names
    assert_caller_is_the_idp_user(caller, shim_server)
    assert echoed.content == [TextContent(type="text", text="hello through mcp-remote")]


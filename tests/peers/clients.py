"""Real MCP clients, set up to log in headlessly: the mcp SDK's OAuthClientProvider (with a
scripted user behind its redirect and callback handlers) and mcp-remote (a stdio proxy, with
the headless `$BROWSER`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.types import CallToolResult

from . import node
from .browser import AuthorizationResponse, LoginTrace, follow_login
from .browser_cli import BrowserCommand
from .servers import free_port

# Bounds for a whole client session (login included) and for one MCP request.
SESSION_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0


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


@dataclass(frozen=True)
class SdkClient:
    provider: OAuthClientProvider
    storage: MemoryStorage
    user: HeadlessUser


def sdk_oauth_client(mcp_url: str, client_name: str = "mcp SDK integration test") -> SdkClient:
    """An OAuthClientProvider for `mcp_url` registering as a public native client, with a
    loopback redirect URI nobody listens on: the headless user stops in front of it."""
    user = HeadlessUser(redirect_uri=f"http://127.0.0.1:{free_port()}/callback")
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name=client_name,
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


# --- mcp-remote --------------------------------------------------------------------------------


@dataclass(frozen=True)
class McpRemote:
    package: str  # as installed in tests/peers/node_modules
    release: str

    def installed_release(self) -> str:
        return json.loads((node.NODE_MODULES / self.package / "package.json").read_text())["version"]


MCP_REMOTES = (
    McpRemote("mcp-remote", "0.15.1"),
    # July 2025: the 2025-03-26 era client.
    McpRemote("mcp-remote-legacy", "0.1.18"),
)


def mcp_remote_params(remote: McpRemote, mcp_url: str, browser: BrowserCommand, workdir: Path) -> StdioServerParameters:
    """How to start mcp-remote for one test, for the SDK's stdio client.

    A fresh HOME and MCP_REMOTE_CONFIG_DIR (it caches registrations and tokens there) and an
    explicit callback port (the positional argument after the URL; its default is derived from
    the server URL and could clash between tests).
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": node.peer_env()["PATH"],
        "HOME": str(home),
        "MCP_REMOTE_CONFIG_DIR": str(workdir / "mcp-remote-config"),
        **browser.env(),
    }
    return StdioServerParameters(
        command=str(node.node_binary()),
        args=[str(node.package_bin(remote.package, "mcp-remote")), mcp_url, str(free_port())],
        env=env,
        cwd=str(workdir),
    )


def list_whoami_echo_over_stdio(
    params: StdioServerParameters, stderr_log: Path
) -> tuple[set[str], CallToolResult, CallToolResult]:
    """Start a stdio proxy (mcp-remote), list its tools, call `whoami` and `echo`; bounded in time."""

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

    return anyio.run(scenario)

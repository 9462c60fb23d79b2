"""Real MCP clients log in through ``mcp-oauth-shim serve --mcp-upstream`` and reach the MCP
server behind it as the user who logged in, over both transports the proxy carries.

The command, not a library object: ``python -m mcp_oauth_shim serve`` configured from the
environment as an operator would, the real IdP (oidc-provider, spec-complete: RFC 9207 ``iss``,
RFC 8707 ``resource=``, ``client_secret_basic``) behind it, and an MCP server of the ``mcp`` SDK
in front of which the shim is the only authorization server the clients see:

- Streamable HTTP: the server at ``/mcp`` of its origin, proxied from the public ``/mcp``;
- the legacy HTTP+SSE transport (MCP 2024-11-05): the server's ``sse_app()`` at the root of its
  origin, its stream public at ``/mcp/sse``. The client's login starts from the ``401`` on that
  stream; the resource it asks for is the one the protected resource metadata names (``/mcp``),
  which lies above the stream's URL (RFC 9728 §3.3 and §7.3: the client checks exactly that).

Each in two modes: the IdP's access tokens passed through, and ``--issue-tokens`` in front of
an IdP set up like Google (opaque access tokens: the shim issues its own RFC 9068 tokens).
``--forward-authorization`` passes the user's access token on, so the server's ``whoami`` tool
reports whose token reached it: the IdP's user, issued for the public MCP URL by the IdP or the
shim.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent

from tests.peers.browser_cli import BrowserCommand
from tests.peers.clients import (
    MCP_REMOTES,
    REQUEST_TIMEOUT_S,
    SESSION_TIMEOUT_S,
    McpRemote,
    list_whoami_echo_over_stdio,
    mcp_remote_params,
    sdk_oauth_client,
)
from tests.peers.fixtures import PeerLogs
from tests.peers.idp import IdP
from tests.peers.procs import start_serve, stop, tail
from tests.peers.servers import RunningServer, free_port, serve_asgi

pytestmark = pytest.mark.integration

STREAMABLE_HTTP = "streamable-http"
LEGACY_SSE = "legacy-sse"
PASSTHROUGH = "idp-tokens"
ISSUED = "issued-tokens-google-like"


def upstream_mcp_server() -> MCPServer:
    """The MCP server behind the proxy: ``whoami`` reports the claims of the bearer token that
    reached it (decoded, not verified: the test asks who the proxy let through), ``echo``
    returns its input."""
    server = MCPServer("behind-the-proxy")

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The claims of the access token the proxy forwarded."""
        request = ctx.request_context.request
        authorization = request.headers.get("authorization", "") if request is not None else ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            raise ValueError("no bearer JWT reached the server")
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError):
            raise ValueError("the bearer token is no JWT") from None
        return json.dumps({"sub": claims.get("sub"), "iss": claims.get("iss"), "aud": claims.get("aud")})

    @server.tool()
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    return server


@dataclass(frozen=True)
class ProxiedServer:
    """``serve`` in front of the MCP server: where clients connect, and the IdP behind it."""

    transport: str
    public_url: str
    idp: IdP
    token_issuer: str  # who signs the access tokens the server receives: the IdP or the shim

    @property
    def resource(self) -> str:
        return self.public_url + "/mcp"

    @property
    def client_url(self) -> str:
        """The URL a client is given: the resource, or the legacy stream below it."""
        return self.resource + "/sse" if self.transport == LEGACY_SSE else self.resource


def serve_upstream(transport: str) -> tuple[AbstractContextManager[RunningServer], str]:
    """The MCP server on loopback, and the ``--mcp-upstream`` URL for its transport."""
    server = upstream_mcp_server()
    if transport == LEGACY_SSE:
        return serve_asgi(server.sse_app()), ""
    return serve_asgi(server.streamable_http_app()), "/mcp"


@pytest.fixture(params=[STREAMABLE_HTTP, LEGACY_SSE])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[PASSTHROUGH, ISSUED])
def token_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def token_settings(token_mode: str) -> dict[str, str]:
    """``serve``'s settings for the mode: ``resource=`` and the IdP's tokens, or (Google) no
    audience parameter, no ``offline_access``, and the shim's own tokens."""
    if token_mode == ISSUED:
        return {"MCP_OAUTH_SHIM_ISSUE_TOKENS": "true", "MCP_OAUTH_SHIM_AUDIENCE_PARAM": "none"}
    return {"MCP_OAUTH_SHIM_EXTRA_SCOPES": "offline_access"}


@pytest.fixture
def proxied(
    transport: str, token_mode: str, start_idp: Callable[..., IdP], peer_logs: PeerLogs, tmp_path: Path
) -> Iterator[ProxiedServer]:
    port = free_port()  # serve binds it itself
    public_url = f"http://127.0.0.1:{port}"
    idp = start_idp(
        redirect_uris=[public_url + "/oauth/callback"],
        resources=[public_url + "/mcp"],
        sends_iss=True,
        token_endpoint_auth_method="client_secret_basic",
        google_like=token_mode == ISSUED,
    )
    upstream, upstream_path = serve_upstream(transport)
    with upstream as running:
        peer_logs.add(f"MCP server behind the proxy {running.url} (requests)", lambda: str(running.requests))
        log = tmp_path / "serve.log"
        peer_logs.add("mcp-oauth-shim serve (output)", lambda: tail(log, 60))
        env = {
            "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": idp.issuer,
            "MCP_OAUTH_SHIM_CLIENT_ID": idp.client_id,
            "MCP_OAUTH_SHIM_CLIENT_SECRET": idp.client_secret,
            "MCP_OAUTH_SHIM_TOKEN_AUTH_METHOD": idp.token_endpoint_auth_method,
            "MCP_OAUTH_SHIM_SCOPES": "openid profile email",
            "MCP_OAUTH_SHIM_SECRET_KEYS": secrets.token_urlsafe(48),
            "MCP_OAUTH_SHIM_MCP_UPSTREAM": running.url + upstream_path,
            "MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION": "true",
            **token_settings(token_mode),
        }
        with open(log, "w") as output:
            process = start_serve(env, port, output)
        try:
            with urllib.request.urlopen(public_url + "/.well-known/oauth-authorization-server", timeout=10) as answer:
                shim_issuer = json.load(answer)["issuer"]
            yield ProxiedServer(transport, public_url, idp, shim_issuer if token_mode == ISSUED else idp.issuer)
        finally:
            stop(process)


def assert_the_server_saw_the_user(result: CallToolResult, server: ProxiedServer) -> None:
    """The server behind the proxy got an access token of the IdP's user who logged in,
    issued for the public MCP URL (by the IdP, or by the shim in issued-token mode)."""
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    claims = json.loads(content.text)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert (claims["sub"], claims["iss"]) == (server.idp.subject, server.token_issuer)
    assert server.resource in audiences


def test_the_sdk_client_logs_in_through_serve_and_reaches_the_server_as_the_user(
    proxied: ProxiedServer, peer_logs: PeerLogs
) -> None:
    client = sdk_oauth_client(proxied.client_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))

    async def scenario() -> tuple[set[str], CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                if proxied.transport == LEGACY_SSE:
                    transport = sse_client(proxied.client_url, auth=client.provider, timeout=REQUEST_TIMEOUT_S)
                else:
                    transport = streamable_http_client(proxied.client_url, http_client=http)
                async with Client(transport, mode="legacy", read_timeout_seconds=REQUEST_TIMEOUT_S) as session:
                    tools = await session.list_tools()
                    return {tool.name for tool in tools.tools}, await session.call_tool("whoami")

    names, result = anyio.run(scenario)
    assert names == {"whoami", "echo"}
    assert_the_server_saw_the_user(result, proxied)
    assert client.user.logins == 1


@pytest.mark.parametrize("remote", MCP_REMOTES, ids=lambda remote: f"mcp-remote-{remote.release}")
def test_mcp_remote_logs_in_through_serve_and_reaches_the_server_as_the_user(
    proxied: ProxiedServer, headless_browser: BrowserCommand, peer_logs: PeerLogs, tmp_path: Path, remote: McpRemote
) -> None:
    """mcp-remote in its default mode for Streamable HTTP; with ``--transport sse-only`` for the
    legacy stream (its default would try Streamable HTTP on the stream's URL first)."""
    stderr_log = tmp_path / "mcp-remote.stderr"
    peer_logs.add(f"mcp-remote {remote.release} (stderr)", lambda: tail(stderr_log, 60))
    params = mcp_remote_params(remote, proxied.client_url, headless_browser, tmp_path)
    if proxied.transport == LEGACY_SSE:
        params.args.extend(["--transport", "sse-only"])

    names, caller, echoed = list_whoami_echo_over_stdio(params, stderr_log)
    assert names == {"whoami", "echo"}
    assert_the_server_saw_the_user(caller, proxied)
    assert echoed.content == [TextContent(type="text", text="hello through mcp-remote")]

"""Real MCP clients log in through `MCPBridge(app, auth=shim)` and call FastAPI routes (issue 3).

The same real IdP (oidc-provider, every setup of tests.peers.idp.CLIENT_SETUPS, the Google-like
one with tokens the shim issues) and the same headless user as the shim's own client tests; the
server is a FastAPI app served by the bridge, whose `whoami` route reads the bearer token the
bridge forwarded to it. With issued tokens, its `idp_userinfo` route calls the IdP's userinfo
with the IdP's access token carried in the shim's.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx2
import pytest
from fastapi import Body, FastAPI, Header, Security
from fastapi.responses import PlainTextResponse
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.shared.auth import OAuthClientMetadata
from mcp.types import CallToolResult, TextContent

from mcp_bridge import MCPBridge, bearer_token
from mcp_oauth_shim import OAuthShim
from tests.integration.conftest import IdPProfile
from tests.integration.test_clients import (
    MCP_REMOTES,
    HeadlessUser,
    McpRemote,
    MemoryStorage,
)
from tests.peers.browser_cli import BrowserCommand
from tests.peers.clients import list_whoami_echo_over_stdio, mcp_remote_params
from tests.peers.fixtures import PeerLogs
from tests.peers.idp import IdP
from tests.peers.mcp_under_test import IdPApi, ShimSettings, build_upstream, userinfo_endpoint
from tests.peers.procs import tail
from tests.peers.servers import RunningServer, free_port

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0


def _claims(jwt: str) -> dict[str, Any]:
    # The bridge verified this token before the route ran; the route only reads it.
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def build_api(shim: OAuthShim | None = None, idp_api: IdPApi | None = None) -> FastAPI:
    """An ordinary FastAPI app: what a team would put behind the bridge; given `idp_api`, with a
    route calling the IdP's API for the user (issued-token mode) with the token `shim` verified."""
    app = FastAPI(title="bridge-under-test")

    @app.get("/whoami", operation_id="whoami")
    def whoami(authorization: Annotated[str, Header()]) -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        claims = _claims(token)
        return {"scheme": scheme, "subject": claims["sub"], "iss": claims["iss"], "aud": claims["aud"]}

    @app.post("/echo", operation_id="echo", response_class=PlainTextResponse)
    def echo(text: Annotated[str, Body(embed=True)]) -> str:
        return text

    if shim is not None and idp_api is not None:
        verified = bearer_token(shim)

        @app.get("/idp-userinfo", operation_id="idp_userinfo")
        async def idp_userinfo(token: AccessToken = Security(verified)) -> dict[str, Any]:
            return await idp_api.userinfo(token)

    return app


@dataclass(frozen=True)
class BridgeServer:
    mcp_url: str
    idp: IdP
    running: RunningServer
    token_issuer: str  # the IdP's when its tokens pass through, the shim's when it issues them
    issue_tokens: bool

    @property
    def tool_names(self) -> set[str]:
        return {"whoami", "echo", "idp_userinfo"} if self.issue_tokens else {"whoami", "echo"}


def serve_bridge(
    idp: IdP,
    profile: IdPProfile,
    public_url: str,
    serve_app: Callable[..., RunningServer],
    *,
    stateless: bool,
    identity: str = "id_token",
) -> BridgeServer:
    mcp_url = public_url + "/mcp"
    settings = ShimSettings.for_profile(profile, identity=identity)
    shim = OAuthShim(
        public_url=public_url,
        resource=mcp_url,
        upstream=build_upstream(idp, mcp_url, settings),
        secret_keys=[secrets.token_urlsafe(48)],
    )
    app = build_api(shim, IdPApi(userinfo_endpoint(idp))) if settings.issue_tokens else build_api()
    MCPBridge(app, auth=shim).mount_http("/mcp", stateless=stateless)
    running = serve_app(app)
    return BridgeServer(
        mcp_url=running.url + "/mcp",
        idp=idp,
        running=running,
        token_issuer=shim.issuer if settings.issue_tokens else idp.issuer,
        issue_tokens=settings.issue_tokens,
    )


def assert_route_saw_the_idp_token(result: CallToolResult, server: BridgeServer) -> None:
    """The route saw the IdP's user in a bearer token for this MCP endpoint, signed by the IdP
    (passed through) or by the shim (issued)."""
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    seen = json.loads(content.text)
    assert seen["scheme"] == "Bearer"
    audience = seen["aud"] if isinstance(seen["aud"], str) else seen["aud"][0]
    assert (seen["subject"], seen["iss"], audience) == (server.idp.subject, server.token_issuer, server.mcp_url)


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["initialize-handshake", "discover-2026"])
def test_mcp_sdk_oauth_client_calls_a_route_through_the_bridge(
    idp: IdP,
    idp_profile: IdPProfile,
    public_url: str,
    serve_app: Callable[..., RunningServer],
    peer_logs: PeerLogs,
    stateless: bool,
    mode: str,
) -> None:
    server = serve_bridge(idp, idp_profile, public_url, serve_app, stateless=stateless)
    user = HeadlessUser(redirect_uri=f"http://127.0.0.1:{free_port()}/callback")
    peer_logs.add("headless browser (SDK client)", lambda: str(user.trace))
    provider = OAuthClientProvider(
        server_url=server.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="bridge integration test",
            redirect_uris=[user.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=user.open,
        callback_handler=user.callback,
    )

    async def scenario() -> tuple[set[str], CallToolResult, CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with Client(
                    streamable_http_client(server.mcp_url, http_client=http),
                    mode=mode,
                    read_timeout_seconds=REQUEST_TIMEOUT_S,
                ) as session:
                    tools = await session.list_tools()
                    return (
                        {tool.name for tool in tools.tools},
                        await session.call_tool("whoami"),
                        await session.call_tool("echo", {"text": "hello through the bridge"}),
                    )

    names, caller, echoed = anyio.run(scenario)
    assert names == server.tool_names
    assert_route_saw_the_idp_token(caller, server)
    assert echoed.content == [TextContent(type="text", text="hello through the bridge")]
    assert user.logins == 1


@pytest.mark.parametrize("remote", MCP_REMOTES, ids=lambda remote: f"mcp-remote-{remote.release}")
def test_mcp_remote_calls_a_route_through_the_bridge(
    idp: IdP,
    idp_profile: IdPProfile,
    public_url: str,
    serve_app: Callable[..., RunningServer],
    headless_browser: BrowserCommand,
    peer_logs: PeerLogs,
    tmp_path: Path,
    remote: McpRemote,
) -> None:
    server = serve_bridge(idp, idp_profile, public_url, serve_app, stateless=False)
    stderr_log = tmp_path / "mcp-remote.stderr"
    peer_logs.add(f"mcp-remote {remote.release} (stderr)", lambda: tail(stderr_log, 60))
    params = mcp_remote_params(remote, server.mcp_url, headless_browser, tmp_path)

    names, caller, echoed = list_whoami_echo_over_stdio(params, stderr_log)
    assert names == server.tool_names
    assert_route_saw_the_idp_token(caller, server)
    assert echoed.content == [TextContent(type="text", text="hello through mcp-remote")]

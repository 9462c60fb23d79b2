"""Issued-token mode with real peers: in front of a Google-like IdP (oidc-provider whose access
tokens are opaque and good only at its userinfo endpoint, with no resource indicators and no
introspection), the shim issues its own RFC 9068 access tokens for the MCP endpoint.

What the clients see in this setup is covered by the client suites themselves (test_clients.py,
test_bridge_clients.py, test_inspector.py run it as `google-like-issued`). This module holds what
only issued-token mode does, for both servers a team would put behind the shim: the mcp SDK's
MCPServer guarded by `shim.protect`, and a FastAPI app served by `MCPBridge(app, auth=shim)`:
- the IdP's own access token is no key to the MCP endpoint;
- the shim publishes the keys its tokens verify with, on its own origin (RFC 8414 `jwks_uri`);
- a tool learns the user (`sub`) and can call the IdP's API with the IdP's access token the
  shim carries, encrypted, inside its own;
- the SDK client refreshes through the shim and the Inspector logs in, through the bridge too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import anyio
import httpx
import httpx2
import jwt
import pytest
from mcp.types import CallToolResult, TextContent

from tests.integration.test_bridge_clients import serve_bridge
from tests.integration.test_clients import sdk_session
from tests.integration.test_idp_peer import Pkce, discover
from tests.integration.test_inspector import run_inspector
from tests.integration.test_shim_with_real_idp import complete_login
from tests.peers.browser import AuthorizationResponse, follow_login, new_browser_client
from tests.peers.browser_cli import BrowserCommand
from tests.peers.clients import REQUEST_TIMEOUT_S, SESSION_TIMEOUT_S, SdkClient, sdk_oauth_client
from tests.peers.fixtures import PeerLogs
from tests.peers.idp import GOOGLE_LIKE_ISSUED, IdP, IdPProfile
from tests.peers.mcp_under_test import ShimServer, ShimSettings, serve_shim
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration

HTTP_TIMEOUT = httpx.Timeout(15.0)
# The e-mail address oidc-provider's one test account has (tests/peers/idp.mjs).
IDP_USER_EMAIL = "tester@example.test"


@pytest.fixture
def idp_profile() -> IdPProfile:
    """Every test here runs against the Google-like IdP, the shim issuing its own tokens."""
    return GOOGLE_LIKE_ISSUED


def serve(kind: str, idp: IdP, public_url: str, serve_app: Callable[..., RunningServer], identity: str) -> ShimServer:
    """The server under test of `kind`: "mcpserver" (the SDK's MCPServer behind
    `shim.protect`) or "bridge" (a FastAPI app behind `MCPBridge(app, auth=shim)`)."""
    if kind == "bridge":
        bridge = serve_bridge(idp, GOOGLE_LIKE_ISSUED, public_url, serve_app, stateless=False, identity=identity)
        return ShimServer(
            public_url=bridge.running.url,
            mcp_url=bridge.mcp_url,
            idp=idp,
            requests=bridge.running.requests,
            token_issuer=bridge.token_issuer,
            issue_tokens=bridge.issue_tokens,
        )
    return serve_shim(public_url, idp, ShimSettings.for_profile(GOOGLE_LIKE_ISSUED, identity=identity), serve_app)


@pytest.fixture(params=["mcpserver", "bridge"])
def server(request: pytest.FixtureRequest, idp: IdP, public_url: str, serve_app: Callable[..., RunningServer]) -> ShimServer:
    return serve(request.param, idp, public_url, serve_app, identity="id_token")


@pytest.fixture
def sdk_client(server: ShimServer, peer_logs: PeerLogs) -> SdkClient:
    client = sdk_oauth_client(server.mcp_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))
    return client


def tool_json(result: CallToolResult) -> dict:
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return json.loads(content.text)


def call_tools(server: ShimServer, client: SdkClient, *calls: str) -> list[CallToolResult]:
    """Log in with the SDK client and call each tool in `calls`, in one session."""

    async def scenario() -> list[CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with sdk_session(server, http) as session:
                    return [await session.call_tool(name) for name in calls]

    return anyio.run(scenario)


def idp_access_token(idp: IdP, redirect_uri: str) -> str:
    """An access token straight from the IdP, for the shim's own client and the same user: what
    a client holding a Google token would send."""
    pkce = Pkce.new()
    params = {
        "response_type": "code",
        "client_id": idp.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": "state-1",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    metadata = discover(idp)
    # The browser stops in front of the redirect URI: the shim never sees this code.
    final = follow_login(metadata["authorization_endpoint"] + "?" + urlencode(params), redirect_uri)
    code = AuthorizationResponse.from_url(final).code
    assert code, final
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
    }
    answer = httpx.post(metadata["token_endpoint"], data=form, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


# --- the IdP's token is not the shim's ----------------------------------------------------------


def test_idp_access_token_is_refused_at_the_mcp_endpoint(server: ShimServer) -> None:
    """RFC 6750 §3.1: a token the IdP issued (good at the IdP's userinfo, as the first request
    shows) is `invalid_token` at the MCP endpoint, which only takes the shim's tokens."""
    token = idp_access_token(server.idp, server.public_url + "/oauth/callback")
    bearer = {"Authorization": f"Bearer {token}"}
    at_idp = httpx.get(discover(server.idp)["userinfo_endpoint"], headers=bearer, timeout=HTTP_TIMEOUT)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    at_mcp = httpx.post(
        server.mcp_url,
        json=initialize,
        headers={**bearer, "Accept": "application/json, text/event-stream"},
        timeout=HTTP_TIMEOUT,
    )
    assert (at_idp.status_code, at_mcp.status_code) == (200, 401), at_mcp.text
    assert 'error="invalid_token"' in at_mcp.headers["www-authenticate"]


# --- the shim's keys ------------------------------------------------------------------------------


def test_metadata_names_a_jwks_uri_on_the_shims_own_origin(server: ShimServer) -> None:
    """RFC 8414 §2 `jwks_uri`: the keys are the shim's, served by the shim, never the IdP's."""
    metadata = httpx.get(server.public_url + "/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT).json()
    jwks_uri = urlsplit(metadata["jwks_uri"])
    jwks = httpx.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT)
    assert f"{jwks_uri.scheme}://{jwks_uri.netloc}" == server.public_url
    assert (jwks.status_code, bool(jwks.json()["keys"])) == (200, True)


def test_issued_access_token_verifies_with_the_published_keys(server: ShimServer) -> None:
    """RFC 9068 §4 as another resource server would check it, with PyJWT and the shim's JWKS:
    `typ` at+jwt, signed by a published key, `iss` the shim, `aud` the MCP endpoint, `sub` the
    IdP's user."""
    with new_browser_client() as http:
        _, _, tokens = complete_login(server, http)
    metadata = httpx.get(server.public_url + "/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT).json()
    token = tokens["access_token"]
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key, algorithms=["ES256", "RS256", "EdDSA"], audience=server.mcp_url, issuer=server.public_url
    )
    assert (jwt.get_unverified_header(token)["typ"].lower(), claims["sub"]) == ("at+jwt", server.idp.subject)


# --- what a tool sees ------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["id_token", "userinfo"])
def test_tool_reads_the_users_subject_from_the_shims_token(
    idp: IdP,
    public_url: str,
    serve_app: Callable[..., RunningServer],
    peer_logs: PeerLogs,
    identity: str,
) -> None:
    """The shim learned the user from the IdP (its ID token, or its userinfo endpoint) and
    wrote them into its own token: `sub` is the IdP's subject, `iss` the shim, and the tool
    reads the e-mail address the IdP gave."""
    server = serve("mcpserver", idp, public_url, serve_app, identity=identity)
    client = sdk_oauth_client(server.mcp_url)
    peer_logs.add("headless browser (SDK client)", lambda: str(client.user.trace))
    (caller,) = call_tools(server, client, "whoami")
    seen = tool_json(caller)
    assert (seen["subject"], seen["iss"], seen["aud"], seen["email"]) == (
        idp.subject,
        server.public_url,
        server.mcp_url,
        IDP_USER_EMAIL,
    )


def test_tool_calls_the_idps_api_with_the_carried_idp_token(server: ShimServer, sdk_client: SdkClient) -> None:
    """A tool opens the IdP's access token the shim's token carries (encrypted) and calls the
    IdP's userinfo with it: the IdP answers for the same user."""
    whoami, userinfo = call_tools(server, sdk_client, "whoami", "idp_userinfo")
    assert (tool_json(userinfo)["sub"], tool_json(userinfo)["email"]) == (tool_json(whoami)["subject"], IDP_USER_EMAIL)


# --- the SDK's refresh and the Inspector, through both servers ------------------------------


def test_mcp_sdk_client_refreshes_its_issued_token(server: ShimServer, sdk_client: SdkClient) -> None:
    """RFC 6749 §6 with the shim's own refresh token: a new shim token, the same user, no second
    login; the IdP's token inside still works for the tool."""

    async def scenario() -> tuple[CallToolResult, CallToolResult]:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with httpx2.AsyncClient(auth=sdk_client.provider, timeout=REQUEST_TIMEOUT_S) as http:
                async with sdk_session(server, http) as session:
                    await session.call_tool("whoami")
                    # The access token is now due: the provider refreshes before the next request.
                    sdk_client.provider.context.token_expiry_time = time.time() - 1
                    return await session.call_tool("whoami"), await session.call_tool("idp_userinfo")

    caller, userinfo = anyio.run(scenario)
    first, refreshed = sdk_client.storage.tokens
    assert refreshed.access_token != first.access_token
    assert (tool_json(caller)["subject"], tool_json(userinfo)["sub"]) == (server.idp.subject, server.idp.subject)
    assert sdk_client.user.logins == 1, "the client logged in again instead of refreshing"


def test_inspector_cli_calls_the_idps_api_through_the_shims_token(
    server: ShimServer, headless_browser: BrowserCommand, peer_logs: PeerLogs, tmp_path: Path
) -> None:
    """MCP Inspector 2.12 (`--cli`) logs in at the shim and calls the tool that uses the IdP's
    token carried inside the shim's."""
    run = run_inspector(server, headless_browser, tmp_path, "--method", "tools/call", "--tool-name", "idp_userinfo")
    peer_logs.add("inspector (stderr)", lambda: run.stderr[-4000:])
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result.get("isError") is False, result
    assert json.loads(result["content"][0]["text"])["sub"] == server.idp.subject

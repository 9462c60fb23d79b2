"""FastAPI-MCP's Auth0 example, import changed, against the real IdP peer (oidc-provider set
up like Auth0: one static confidential client, `audience=`, exact callback, no registration)
and real clients: the mcp SDK's OAuth client and mcp-remote (0.15 and the 0.1.18 that
FastAPI-MCP's docs were written for)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.stdio import stdio_client

from mcp_bridge.compat import ENV_PUBLIC_URL, ENV_SECRET_KEYS
from tests.bridge.test_compat_kit import json_of, mcp_session
from tests.bridge.test_compat_oauth import SIGNING_KEY, Settings, auth0_example_app
from tests.peers.browser_cli import BrowserCommand
from tests.peers.clients import MCP_REMOTES, McpRemote, mcp_remote_params, sdk_oauth_client
from tests.peers.fixtures import (  # noqa: F401 - fixtures used by name
    headless_browser,
    idp_jwks_file,
    peer_logs,
    peers_installed,
    serve_app,
    server_socket,
    start_idp,
)
from tests.peers.idp import IdP
from tests.peers.servers import RunningServer

pytestmark = pytest.mark.integration

AUDIENCE = "https://items.example/api"


@pytest.fixture
def deployment(
    start_idp: Callable[..., IdP],  # noqa: F811 - the imported fixture
    serve_app: Callable[..., RunningServer],  # noqa: F811
    server_socket: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[RunningServer, IdP]:
    """The Auth0 example behind the Auth0-like IdP: no `iss` on redirects, `audience=`,
    client_secret_post; the public URL and key come from the environment."""
    public_url = f"http://127.0.0.1:{server_socket.getsockname()[1]}"
    idp = start_idp(redirect_uris=[public_url + "/oauth/callback"], resources=[AUDIENCE], sends_iss=False)
    discovery = httpx.get(idp.discovery_url, timeout=10).json()
    settings = Settings(
        issuer=idp.issuer,
        audience=AUDIENCE,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        authorize_path=urlsplit(discovery["authorization_endpoint"]).path,
        jwks_path=urlsplit(discovery["jwks_uri"]).path,
    )
    monkeypatch.setenv(ENV_PUBLIC_URL, public_url)
    monkeypatch.setenv(ENV_SECRET_KEYS, SIGNING_KEY)
    return serve_app(auth0_example_app(settings)), idp


def test_auth0_example_logs_in_at_the_real_idp_and_calls_the_protected_route(
    deployment: tuple[RunningServer, IdP],
) -> None:
    running, idp = deployment
    client = sdk_oauth_client(running.url + "/mcp", client_name="compat example, real IdP")

    async def scenario() -> Any:
        with anyio.fail_after(120):
            async with mcp_session(running.url + "/mcp", auth=client.provider) as session:
                return json_of(await session.call_tool("protected", {}))

    greeting = anyio.run(scenario)
    assert greeting == {"message": f"Hello, {idp.subject}!", "user_id": idp.subject}
    assert client.user.logins == 1


@pytest.mark.parametrize("remote", MCP_REMOTES, ids=lambda remote: f"mcp-remote-{remote.release}")
def test_mcp_remote_logs_in_without_a_fixed_port_and_calls_the_protected_route(
    deployment: tuple[RunningServer, IdP],
    headless_browser: BrowserCommand,  # noqa: F811
    tmp_path: Path,
    remote: McpRemote,
) -> None:
    # FastAPI-MCP's docs told users to pin mcp-remote's callback port and register it at the
    # IdP; here the port is whatever is free and the IdP only knows the shim's callback.
    running, idp = deployment
    params = mcp_remote_params(remote, running.url + "/mcp", headless_browser, tmp_path)

    async def scenario() -> Any:
        with anyio.fail_after(120), open(tmp_path / "mcp-remote.stderr", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=120) as session:
                return json_of(await session.call_tool("protected", {}))

    assert anyio.run(scenario) == {"message": f"Hello, {idp.subject}!", "user_id": idp.subject}

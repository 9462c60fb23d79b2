"""The official `@modelcontextprotocol/conformance` 0.1.16 server scenarios against the bridge.

Run on Node 22 from tests/peers (installed from its lock file on first use). The suite's CLI
cannot send an Authorization header, so for the authenticated runs a two-line ASGI wrapper in
front of the app adds a real bearer token (verified by the shim like any other) to each request.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import build_app
from tests.bridge.token_issuer import TokenIssuer
from tests.peers import node
from tests.peers.servers import bind_loopback, serve_asgi

pytestmark = pytest.mark.integration

SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection", "server-sse-multiple-streams"]


def with_bearer(app: ASGIApp, token: str) -> ASGIApp:
    header = (b"authorization", f"Bearer {token}".encode())

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [*scope["headers"], header]}
        await app(scope, receive, send)

    return wrapper


@pytest.fixture(scope="module", params=["stateful", "stateless"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["bearer", "passthrough"])
def bridge_url(request: pytest.FixtureRequest, mode: str) -> Iterator[str]:
    node.ensure_installed()
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    app, _ = build_app()
    served: ASGIApp = app
    if request.param == "bearer":
        issuer = TokenIssuer()
        bridge = MCPBridge(app, auth=issuer.shim(url))
        served = with_bearer(app, issuer.token(audience=url + "/mcp"))
    else:
        bridge = MCPBridge(app)
    bridge.mount_http("/mcp", stateless=mode == "stateless")
    with serve_asgi(served, sock):
        yield url + "/mcp"


def run_scenario(url: str, scenario: str, out: Path) -> list[dict[str, Any]]:
    cli = node.package_bin("@modelcontextprotocol/conformance")
    done = subprocess.run(
        [str(node.node_binary()), str(cli), "server", "--url", url, "--scenario", scenario, "-o", str(out)],
        capture_output=True,
        text=True,
        env=node.peer_env(),
        timeout=180,
        check=False,
    )
    (checks_file,) = out.glob(f"server-{scenario}-*/checks.json")
    checks: list[dict[str, Any]] = json.loads(checks_file.read_text())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return checks


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_server_scenario(bridge_url: str, mode: str, scenario: str, tmp_path: Path) -> None:
    checks = run_scenario(bridge_url, scenario, tmp_path)
    failures = [c for c in checks if c["status"] == "FAILURE"]
    assert not failures, json.dumps(failures, indent=1)
    if mode == "stateless" and scenario == "server-sse-multiple-streams":
        # Stateless mode has no sessions by definition; the scenario can only note that.
        assert [c["id"] for c in checks if c["status"] != "SUCCESS"] == ["server-sse-multiple-streams-session"]
    else:
        assert all(c["status"] in ("SUCCESS", "INFO") for c in checks), json.dumps(checks, indent=1)
        assert any(c["status"] == "SUCCESS" for c in checks)

"""MCP Inspector 2.12 in CLI mode, a third real client: it discovers the shim, registers, opens
the browser (our headless one through $BROWSER), takes the code at its fixed loopback callback
and calls a tool - through the real IdP, in every setup (tests.peers.idp.CLIENT_SETUPS), the
Google-like one with tokens the shim issues."""

from __future__ import annotations

import json
import fcntl
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.peers import node
from tests.peers.browser_cli import BrowserCommand
from tests.peers.fixtures import PeerLogs
from tests.peers.mcp_under_test import ShimServer

pytestmark = pytest.mark.integration

INSPECTOR = "@modelcontextprotocol/inspector"
RUN_TIMEOUT_S = 150


def run_inspector(server: ShimServer, browser: BrowserCommand, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = workdir / "home"  # the Inspector keeps registrations and tokens under HOME
    home.mkdir(parents=True, exist_ok=True)
    env = node.peer_env(
        {"HOME": str(home), "MCP_AUTO_OPEN_ENABLED": "true", "MCP_INSPECTOR_SECRET_STORE": "memory", **browser.env()}
    )
    command = [str(node.node_binary()), str(node.package_bin(INSPECTOR, "mcp-inspector")), "--cli", server.mcp_url,
               "--transport", "http", *args]
    # The Inspector's OAuth callback listens on a fixed port (6276): one run at a time on this
    # machine, whichever test process (pytest-xdist worker) starts it.
    with open(Path(tempfile.gettempdir()) / "mcp-oauth-shim-inspector.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_inspector_cli_logs_in_and_calls_whoami(
    shim_server: ShimServer, headless_browser: BrowserCommand, peer_logs: PeerLogs, tmp_path: Path
) -> None:
    run = run_inspector(shim_server, headless_browser, tmp_path, "--method", "tools/call", "--tool-name", "whoami")
    peer_logs.add("inspector (stderr)", lambda: run.stderr[-4000:])
    peer_logs.add("headless browser", headless_browser.log_tail)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result.get("isError") is False, result
    caller = json.loads(result["content"][0]["text"])
    assert (caller["subject"], caller["iss"], caller["aud"]) == (
        shim_server.idp.subject,
        shim_server.token_issuer,
        shim_server.mcp_url,
    )

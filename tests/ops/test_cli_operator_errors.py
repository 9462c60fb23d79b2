"""What an operator meets when ``serve`` cannot start as configured: one line naming the
setting, exit status 2, never a traceback, never a credential echoed."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

from mcp_oauth_shim import cli

SECRET = "the-idp-client-secret-value"
BASE_ENV = {
    # Loopback, nobody listening: nothing here needs the IdP to answer.
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "http://127.0.0.1:9",
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET,
    "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
}


def run_main(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, environ={**BASE_ENV, **env}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other process already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_metrics_port_already_in_use_is_one_line_not_a_traceback(busy_port: int) -> None:
    code, _, err = run_main(["serve", "--metrics-port", str(busy_port)], {})
    assert code == 2
    assert err.startswith("mcp-oauth-shim serve: --metrics-port") and f"127.0.0.1:{busy_port}" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--check"], []], ids=["check", "serve"])
def test_a_metrics_port_equal_to_the_serving_port_is_refused_before_anything_listens(argv: list[str], busy_port: int) -> None:
    # The serving port is taken too: were the check missing, serve would fail later, differently.
    code, _, err = run_main(["serve", *argv, "--port", str(busy_port), "--metrics-port", str(busy_port)], {})
    assert code == 2
    assert err.strip() == (
        f"mcp-oauth-shim serve: --metrics-port / MCP_OAUTH_SHIM_METRICS_PORT must differ from --port ({busy_port}): "
        "the metrics are served apart from the public endpoints."
    )

"""Issued-token mode from the command line: ``--issue-tokens`` / ``MCP_OAUTH_SHIM_ISSUE_TOKENS``."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import cli
from mcp_oauth_shim.app_factory import build_shim

BASE_ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example",
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": "an-upstream-secret",
    "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
    "MCP_OAUTH_SHIM_PUBLIC_URL": "https://mcp.example.com",
}


def build(argv: list[str], env: dict[str, str]):
    return build_shim(cli.serve_settings(cli.parser().parse_args(["serve", *argv]), {**BASE_ENV, **env}))


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--issue-tokens"], {}), ([], {"MCP_OAUTH_SHIM_ISSUE_TOKENS": "true"})],
)
def test_issue_tokens_turns_issued_token_mode_on(argv: list[str], env: dict[str, str]) -> None:
    shim = build(argv, env)
    assert shim.issue_tokens is True
    with TestClient(shim.app) as client:
        metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["jwks_uri"] == "https://mcp.example.com/oauth/jwks"


def test_without_the_flag_the_idps_tokens_are_passed_through() -> None:
    shim = build([], {})
    assert shim.issue_tokens is False
    assert shim.context.issued is None

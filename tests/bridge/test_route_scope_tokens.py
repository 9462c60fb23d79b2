"""With `auth`, every scope a tool's route declares must be an RFC 6749 §3.3 scope-token.

Checked whenever the tool table is built: at `MCPBridge(...)`, at `refresh()` (routes added
later), and through the FastAPI-MCP facade. Scopes IdPs really use (URLs, URNs, `api://`
names) are scope-tokens and are accepted.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Security

from mcp_bridge import MCPBridge
from mcp_bridge.compat import FastApiMCP
from mcp_oauth_shim import ConfigurationError
from tests.bridge.sample_app import scoped
from tests.bridge.test_compat_oauth import proxied_config
from tests.bridge.token_issuer import TokenIssuer


def app_with_route(scope: str, *, path: str = "/notes", operation_id: str = "read_notes") -> FastAPI:
    app = FastAPI()
    add_route(app, scope, path=path, operation_id=operation_id)
    return app


def add_route(app: FastAPI, scope: str, *, path: str, operation_id: str) -> None:
    @app.get(path, operation_id=operation_id)
    def read(granted: list[str] = Security(scoped, scopes=[scope])) -> list[str]:
        return granted


def test_a_route_with_a_bad_scope_added_after_the_bridge_is_refused_by_refresh() -> None:
    app = app_with_route("notes:read")
    bridge = MCPBridge(app, auth=TokenIssuer().shim("http://127.0.0.1:8000"))
    add_route(app, "write notes", path="/drafts", operation_id="write_drafts")
    with pytest.raises(ConfigurationError, match="write_drafts"):
        bridge.refresh()


def test_the_fastapi_mcp_facade_with_oauth_refuses_a_route_with_a_bad_scope() -> None:
    with pytest.raises(ConfigurationError, match="read_notes"):
        FastApiMCP(app_with_route("read notes"), auth_config=proxied_config(), public_url="http://127.0.0.1:8000")


# Scopes of real IdPs: Entra ID's resource scopes, Entra app URIs, Google's URL scopes, URNs.
IDP_SCOPES = [
    "https://graph.microsoft.com/.default",
    "api://x/read",
    "https://www.googleapis.com/auth/drive.readonly",
    "urn:example:notes:read",
    "notes:read",
    "offline_access",
]


@pytest.mark.parametrize("scope", IDP_SCOPES)
def test_scopes_idps_use_are_accepted(scope: str) -> None:
    bridge = MCPBridge(app_with_route(scope), auth=TokenIssuer().shim("http://127.0.0.1:8000"))
    assert [spec.scopes for spec in bridge.specs] == [frozenset({scope})]


@pytest.mark.parametrize("scope", IDP_SCOPES)
def test_scopes_idps_use_are_accepted_by_the_fastapi_mcp_facade(scope: str) -> None:
    mcp = FastApiMCP(app_with_route(scope), auth_config=proxied_config(), public_url="http://127.0.0.1:8000")
    assert [spec.scopes for spec in mcp.bridge.specs] == [frozenset({scope})]

"""The bridge examples run as documented: each is served under uvicorn and used by the SDK client."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def session(url: str, token: str | None) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"} if token else None)
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as mcp:  # type: ignore[arg-type]
        yield mcp


async def test_passthrough_example_routes_see_the_clients_token() -> None:
    app = load("bridge_passthrough").build_app("s3cret")
    with serve_asgi(app) as server:
        async with session(server.url + "/mcp", "s3cret") as mcp:
            ok = await mcp.call_tool("get_item", {"item_id": 1})
        async with session(server.url + "/mcp", "wrong") as mcp:
            refused = await mcp.call_tool("get_item", {"item_id": 1})
    assert ok.structured_content == {"id": 1, "name": "pen"}
    assert refused.is_error and refused.content[0].text.startswith("HTTP 401")  # type: ignore[union-attr]


async def test_reject_example_refuses_the_endpoint_without_a_token() -> None:
    app = load("bridge_reject_without_auth").build_app("s3cret")
    with serve_asgi(app) as server:
        refused = httpx.post(server.url + "/mcp", json={}, headers={"content-type": "application/json"})
        async with session(server.url + "/mcp", "s3cret") as mcp:
            result = await mcp.call_tool("report_summary", {})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert result.structured_content == {"open": 3, "closed": 14}


def _served_with_shim(module: str, **shim_options: object) -> tuple[object, TokenIssuer, str]:
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    shim = issuer.shim(url, **shim_options)
    return (load(module).build_app(shim), sock), issuer, url  # type: ignore[return-value]


async def test_oauth_example_checks_scopes_over_mcp_and_plain_http() -> None:
    (app, sock), issuer, url = _served_with_shim("bridge_oauth", scopes_supported=["notes:read", "notes:write"])
    reader = issuer.token(audience=url + "/mcp", scopes=("notes:read",), subject="ann")
    with serve_asgi(app, sock):
        async with session(url + "/mcp", reader) as mcp:
            names = {t.name for t in (await mcp.list_tools()).tools}
            me = await mcp.call_tool("whoami", {})
        plain_ok = httpx.get(url + "/notes", headers={"authorization": f"Bearer {reader}"})
        plain_anonymous = httpx.get(url + "/notes")
        plain_write = httpx.post(url + "/notes?text=x", headers={"authorization": f"Bearer {reader}"})
    assert names == {"list_notes", "whoami"}  # add_note needs notes:write: hidden
    assert json.loads(me.content[0].text)["subject"] == "ann"  # type: ignore[union-attr]
    assert plain_ok.json() == ["first note"]
    assert plain_anonymous.status_code == 401 and "resource_metadata=" in plain_anonymous.headers["www-authenticate"]
    assert plain_write.status_code == 403 and 'error="insufficient_scope"' in plain_write.headers["www-authenticate"]


async def test_custom_metadata_example_serves_the_document_and_checks_tokens() -> None:
    import httpx as _httpx

    from mcp_oauth_shim import OAuthShim

    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    document = {
        "issuer": issuer.issuer,
        "authorization_endpoint": f"{issuer.issuer}/authorize",
        "token_endpoint": f"{issuer.issuer}/token",
        "jwks_uri": f"{issuer.issuer}/jwks",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }
    http = _httpx.AsyncClient(transport=_httpx.ASGITransport(app=issuer.app))
    shim = OAuthShim(public_url=url, custom_metadata=document, http_client=http)
    app = load("bridge_custom_metadata").build_app(shim)
    with serve_asgi(app, sock):
        prm = httpx.get(url + "/.well-known/oauth-protected-resource/mcp").json()
        async with session(url + "/mcp", issuer.token(audience=url + "/mcp")) as mcp:
            result = await mcp.call_tool("stock_level", {"sku": "A-1"})
        anonymous = httpx.post(url + "/mcp", json={}, headers={"content-type": "application/json"})
    assert prm["authorization_servers"] == [issuer.issuer]
    assert json.loads(result.content[0].text) == {"sku": "A-1", "units": 12}  # type: ignore[union-attr]
    assert anonymous.status_code == 401


MACHINE_ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example.test/",
    "MCP_OAUTH_SHIM_CLIENT_ID": "upstream-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": "upstream-secret-never-shown",
    "MCP_OAUTH_SHIM_SECRET_KEYS": "a-signing-key-for-the-example-tests-0123456789",
    "NIGHTLY_REPORT_SECRET": "nightly-report-secret-0123456789",
}


async def test_machine_client_example_calls_the_machine_example_as_itself() -> None:
    example, caller = load("machine_clients"), load("machine_client_call")
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    app = example.build_app(example.shim_from_env(MACHINE_ENV, url))
    with serve_asgi(app, sock):
        seen = await caller.whoami(url + "/mcp", "nightly-report", MACHINE_ENV["NIGHTLY_REPORT_SECRET"])
    assert seen == {"subject": "nightly-report", "client_id": "nightly-report", "scopes": ["notes:read"]}


def test_machine_client_example_with_an_enterprise_idp_offers_the_jwt_bearer_grant() -> None:
    from starlette.testclient import TestClient

    env = {**MACHINE_ENV, "ENTERPRISE_IDP_ISSUER": "https://login.acme.example", "DESK_AGENT_SECRET": "desk-agent-secret-0123456789"}
    shim = load("machine_clients").shim_from_env(env)
    with TestClient(shim.app, base_url="http://127.0.0.1:8000") as client:
        doc = client.get("/.well-known/oauth-authorization-server").json()
    assert doc["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]

"""`mcp_bridge.compat`: FastAPI-MCP 0.4 apps (written as its docs and examples show them) run
with only the import changed - tools listed and called through the mcp SDK client over uvicorn.

The OAuth configurations are in test_compat_oauth.py.
"""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPBearer
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_bridge.compat import ENV_PUBLIC_URL, AuthConfig, FastApiMCP
from mcp_oauth_shim import ConfigurationError
from tests.bridge.test_compat_kit import ALL_ITEM_TOOLS, items_app, json_of, mcp_session, text_of
from tests.peers.servers import serve_asgi

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
IDP = "https://idp.example"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture(autouse=True)
def _no_public_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PUBLIC_URL, raising=False)


async def tool_names(url: str, token: str | None = None) -> set[str]:
    async with mcp_session(url, token) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


async def test_basic_app_lists_every_operation_and_calls_one() -> None:
    app = items_app()
    mcp = FastApiMCP(app)
    mcp.mount_http()
    with serve_asgi(app) as server:
        async with mcp_session(server.url + "/mcp") as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            item = json_of(await session.call_tool("get_item", {"item_id": 1}))
    assert names == ALL_ITEM_TOOLS
    assert item["name"] == "Hammer"


def test_name_and_description_default_to_the_apps() -> None:
    mcp = FastApiMCP(items_app())
    assert (mcp.name, mcp.description) == ("Items API", "A small inventory")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"include_operations": ["get_item", "list_items"]}, {"get_item", "list_items"}, id="include-ops"),
        pytest.param(
            {"exclude_operations": ["create_item", "delete_item"]},
            {"list_items", "get_item", "search_items"},
            id="exclude-ops",
        ),
        pytest.param({"include_tags": ["items"]}, ALL_ITEM_TOOLS - {"search_items"}, id="include-tags"),
        pytest.param({"exclude_tags": ["search"]}, ALL_ITEM_TOOLS - {"search_items"}, id="exclude-tags"),
        pytest.param(
            {"include_operations": ["delete_item"], "include_tags": ["search"]},
            {"delete_item", "search_items"},
            id="combined-include",
        ),
    ],
)
async def test_tag_and_operation_filters_select_the_tools(filters: dict[str, Any], expected: set[str]) -> None:
    app = items_app()
    FastApiMCP(app, name="filtered", **filters).mount_http(mount_path="/filtered-mcp")
    with serve_asgi(app) as server:
        assert await tool_names(server.url + "/filtered-mcp") == expected


async def test_a_filtered_out_operation_cannot_be_called() -> None:
    app = items_app()
    FastApiMCP(app, include_operations=["get_item"]).mount_http()
    with serve_asgi(app) as server:
        async with mcp_session(server.url + "/mcp") as session:
            result = await session.call_tool("delete_item", {"item_id": 1})
            still_there = json_of(await session.call_tool("get_item", {"item_id": 1}))
    assert result.is_error and "Unknown tool" in text_of(result)
    assert still_there["id"] == 1


@pytest.mark.parametrize(
    "filters",
    [
        {"include_operations": ["a"], "exclude_operations": ["b"]},
        {"include_tags": ["a"], "exclude_tags": ["b"]},
    ],
    ids=["operations", "tags"],
)
def test_include_and_exclude_of_the_same_kind_are_refused(filters: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Cannot specify both"):
        FastApiMCP(items_app(), **filters)


async def test_separate_mcp_app_serves_the_api_apps_tools() -> None:
    api_app = items_app()
    mcp_app = FastAPI()
    mcp = FastApiMCP(api_app)
    mcp.mount_http(mcp_app)
    # Only the MCP app runs; the API app is called in-process and is not served at all.
    with serve_asgi(mcp_app) as server:
        async with mcp_session(server.url + "/mcp") as session:
            items = json_of(await session.call_tool("list_items", {}))
    assert [item["name"] for item in items] == ["Hammer", "Saw"]
    assert all(getattr(route, "path", None) != "/mcp" for route in api_app.routes)


async def test_mount_on_an_api_router_serves_under_its_prefix() -> None:
    app = items_app()
    other_router = APIRouter(prefix="/other/route")
    app.include_router(other_router)
    mcp = FastApiMCP(app)
    mcp.mount_http(other_router)
    with serve_asgi(app) as server:
        assert await tool_names(server.url + "/other/route/mcp") == ALL_ITEM_TOOLS
        assert httpx.post(server.url + "/mcp", json=INIT, headers=MCP_HEADERS).status_code == 404


async def test_setup_server_picks_up_routes_added_later() -> None:
    app = items_app()
    mcp = FastApiMCP(app)
    mcp.mount_http()

    @app.get("/new/endpoint/", operation_id="new_endpoint", response_model=dict[str, str])
    async def new_endpoint() -> dict[str, str]:
        return {"message": "Hello, world!"}

    before = {tool.name for tool in mcp.tools}
    mcp.setup_server()
    with serve_asgi(app) as server:
        async with mcp_session(server.url + "/mcp") as session:
            hello = json_of(await session.call_tool("new_endpoint", {}))
    assert "new_endpoint" not in before
    assert hello == {"message": "Hello, world!"}


def token_passthrough_app() -> FastAPI:
    """FastAPI-MCP's token passthrough example: HTTPBearer on a route and on the endpoint."""
    app = items_app()
    token_auth_scheme = HTTPBearer()

    @app.get("/private", operation_id="private")
    async def private(token=Depends(token_auth_scheme)):  # type: ignore[no-untyped-def]
        return token.credentials

    mcp = FastApiMCP(app, name="Protected MCP", auth_config=AuthConfig(dependencies=[Depends(token_auth_scheme)]))
    mcp.mount_http()
    return app


def test_token_passthrough_endpoint_refuses_without_token_with_a_bearer_challenge() -> None:
    with serve_asgi(token_passthrough_app()) as server:
        response = httpx.post(server.url + "/mcp", json=INIT, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_passthrough_route_sees_the_clients_token() -> None:
    with serve_asgi(token_passthrough_app()) as server:
        async with mcp_session(server.url + "/mcp", token="my-token") as session:
            seen = json_of(await session.call_tool("private", {}))
    assert seen == "my-token"


def header_echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/echo-headers", operation_id="echo_headers")
    async def echo_headers(request: Request) -> dict[str, str | None]:
        return {name: request.headers.get(name) for name in ("authorization", "x-tenant")}

    return app


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["authorization"], {"authorization": "Bearer t", "x-tenant": None}),
        (["X-Tenant"], {"authorization": None, "x-tenant": "acme"}),
    ],
    ids=["default-authorization", "custom-allow-list"],
)
async def test_headers_forwards_only_the_allow_listed_headers(headers: list[str], expected: dict[str, Any]) -> None:
    app = header_echo_app()
    FastApiMCP(app, headers=headers).mount_http()
    with serve_asgi(app) as server:
        http = create_mcp_http_client(headers={"Authorization": "Bearer t", "X-Tenant": "acme"})
        transport = streamable_http_client(server.url + "/mcp", http_client=http)
        async with http, Client(transport, mode="legacy") as session:  # type: ignore[arg-type]
            seen = json_of(await session.call_tool("echo_headers", {}))
    assert seen == expected


def two_apps_same_route() -> tuple[FastAPI, FastAPI]:
    """The schema app answers "in-process"; a deployed copy elsewhere answers "remote"."""

    def build(answer: str) -> FastAPI:
        app = FastAPI()

        @app.get("/where", operation_id="where")
        async def where() -> dict[str, str]:
            return {"served_by": answer}

        return app

    return build("in-process"), build("remote")


async def test_http_client_with_a_base_url_calls_the_api_there() -> None:
    source, deployed = two_apps_same_route()
    with serve_asgi(deployed) as api:
        mcp = FastApiMCP(source, http_client=httpx.AsyncClient(base_url=api.url, timeout=20))
        mcp.mount_http()
        with serve_asgi(source) as server:
            async with mcp_session(server.url + "/mcp") as session:
                seen = json_of(await session.call_tool("where", {}))
    assert seen == {"served_by": "remote"}


async def test_http_client_without_base_url_is_replaced_by_in_process_calls() -> None:
    # FastAPI-MCP's "configure the HTTP timeout" example passes a client with no base_url.
    source, _ = two_apps_same_route()
    FastApiMCP(source, http_client=httpx.AsyncClient(timeout=20)).mount_http()
    with serve_asgi(source) as server:
        async with mcp_session(server.url + "/mcp") as session:
            seen = json_of(await session.call_tool("where", {}))
    assert seen == {"served_by": "in-process"}


async def test_mount_sse_serves_the_legacy_transport() -> None:
    from mcp.client.sse import sse_client

    app = items_app()
    FastApiMCP(app).mount_sse()
    with serve_asgi(app) as server:
        async with Client(sse_client(server.url + "/sse"), mode="legacy") as session:  # type: ignore[arg-type]
            item = json_of(await session.call_tool("get_item", {"item_id": 2}))
    assert item["name"] == "Saw"


async def test_deprecated_mount_warns_and_serves_sse_at_mcp() -> None:
    from mcp.client.sse import sse_client

    app = items_app()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FastApiMCP(app).mount()
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    with serve_asgi(app) as server:
        async with Client(sse_client(server.url + "/mcp"), mode="legacy") as session:  # type: ignore[arg-type]
            names = {tool.name for tool in (await session.list_tools()).tools}
    assert names == ALL_ITEM_TOOLS


@pytest.mark.parametrize(
    ("public_url", "status"),
    [(None, 421), ("https://api.example.com", 200)],
    ids=["loopback-only-by-default", "public-url-host-allowed"],
)
def test_foreign_host_is_refused_unless_it_is_the_public_url(public_url: str | None, status: int) -> None:
    app = items_app()
    FastApiMCP(app, public_url=public_url).mount_http(stateless=True)
    with serve_asgi(app) as server:
        response = httpx.post(server.url + "/mcp", json=INIT, headers={**MCP_HEADERS, "host": "api.example.com"})
    assert response.status_code == status


@pytest.mark.parametrize("public_url", ["api.example.com", "ftp://api.example.com", "https://api.example.com/?x=1"])
def test_a_malformed_public_url_is_refused(public_url: str) -> None:
    with pytest.raises(ConfigurationError, match="absolute http"):
        FastApiMCP(items_app(), public_url=public_url)


def test_public_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PUBLIC_URL, "https://api.example.com/")
    assert FastApiMCP(items_app()).public_url == "https://api.example.com"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({}, "at least one of 'issuer', 'custom_oauth_metadata' or 'dependencies'", id="nothing"),
        pytest.param({"issuer": IDP, "setup_proxies": True}, "'client_id' is required", id="no-client-id"),
        pytest.param(
            {"issuer": IDP, "setup_proxies": True, "client_id": "c"},
            "'client_secret' is required when 'setup_fake_dynamic_registration'",
            id="no-secret-with-registration",
        ),
        pytest.param(
            {"issuer": IDP, "setup_proxies": True, "client_id": "c", "setup_fake_dynamic_registration": False},
            "MCP clients never receive it",
            id="no-secret-without-registration",
        ),
        pytest.param(
            {"dependencies": [Depends(HTTPBearer())], "setup_proxies": True, "client_id": "c", "client_secret": "s"},
            "'issuer' or 'oauth_metadata_url' is required",
            id="proxies-without-idp",
        ),
        pytest.param(
            {
                "issuer": IDP,
                "setup_proxies": True,
                "client_id": "c",
                "client_secret": "s",
                "setup_fake_dynamic_registration": False,
            },
            "'allowed_redirect_uris' is required",
            id="static-registration-without-allow-list",
        ),
        pytest.param({"issuer": IDP, "client_scret": "typo"}, "client_scret", id="unknown-field"),
        pytest.param(
            {"custom_oauth_metadata": {"issuer": "https://as.example", "token_endpoint": "https://as.example/t"}},
            "authorization_endpoint is required",
            id="custom-metadata-without-authorize",
        ),
        pytest.param(
            {"issuer": IDP, "metadata_path": "well-known"}, "absolute path", id="relative-metadata-path"
        ),
    ],
)
def test_auth_config_refuses_incomplete_settings(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthConfig(**config)


def test_oauth_without_a_public_url_says_how_to_set_it() -> None:
    config = AuthConfig(issuer="https://idp.example/", client_id="c", client_secret="s", setup_proxies=True)
    with pytest.raises(ConfigurationError, match=ENV_PUBLIC_URL):
        FastApiMCP(items_app(), auth_config=config)

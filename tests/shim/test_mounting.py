"""shim.routes in Starlette, shim.router in FastAPI, shim.app alone: the same endpoints."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from .kit import PUBLIC_URL, make_kit


def test_fastapi_include_router_serves_the_shim():
    from fastapi import FastAPI

    kit = make_kit()
    app = FastAPI()

    @app.get("/items")
    def items() -> list[int]:
        return [1]

    app.include_router(kit.shim.router)
    client = TestClient(app, base_url=PUBLIC_URL)
    assert client.get("/.well-known/oauth-authorization-server").json()["issuer"] == PUBLIC_URL
    assert client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}).status_code == 201
    assert client.get("/items").json() == [1]
    assert "/oauth/token" not in client.get("/openapi.json").text


def test_starlette_app_with_shim_routes_serves_the_shim():
    kit = make_kit()
    app = Starlette(routes=[*kit.shim.routes, Route("/hello", lambda r: PlainTextResponse("hi"))])
    client = TestClient(app, base_url=PUBLIC_URL)
    assert client.get("/.well-known/oauth-protected-resource/mcp").json()["resource"] == PUBLIC_URL + "/mcp"
    assert client.get("/hello").text == "hi"


def test_standalone_app_closes_its_idp_connections_on_shutdown():
    from mcp_oauth_shim import OAuthShim, Upstream

    shim = OAuthShim(
        public_url=PUBLIC_URL,
        upstream=Upstream.oidc(issuer="http://127.0.0.1:9", client_id="c", client_secret="s"),
        secret_keys=["k" * 40],
    )
    transport = shim.upstream_client.transport
    closed: list[bool] = []
    original = transport.aclose

    async def recording_aclose() -> None:
        closed.append(True)
        await original()

    transport.aclose = recording_aclose  # type: ignore[method-assign]
    with TestClient(shim.app, base_url=PUBLIC_URL) as client:
        assert client.get("/.well-known/oauth-protected-resource/mcp").status_code == 200
        assert closed == []
    assert closed == [True]
    # The same transport serves a later lifespan (tests/shim/test_ready_to_ship.py).
    assert shim.upstream_client.transport is transport

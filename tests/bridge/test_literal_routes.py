"""LiteralRoutes: the shim's fixed-path endpoints tried as one route, with the routing behaviour
of the member routes unchanged."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, NoMatchFound, Route
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_bridge.routes import LiteralRoutes

from .token_issuer import TokenIssuer


def _named(text: str):
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(text)

    return endpoint


MEMBERS = [
    Route("/oauth/token", _named("token"), methods=["POST"], name="token"),
    Route("/oauth/authorize", _named("authorize"), methods=["GET"], name="authorize"),
    Route("/.well-known/oauth-authorization-server", _named("metadata"), name="metadata"),
]


def _app(*later: Route) -> Starlette:
    return Starlette(routes=[*LiteralRoutes.group(MEMBERS), *later])


@pytest.mark.parametrize(
    ("method", "path", "text"),
    [("POST", "/oauth/token", "token"), ("GET", "/oauth/authorize", "authorize"), ("GET", "/.well-known/oauth-authorization-server", "metadata")],
)
def test_each_member_answers_its_path(method: str, path: str, text: str) -> None:
    response = TestClient(_app()).request(method, path)
    assert (response.status_code, response.text) == (200, text)


def test_a_members_wrong_method_is_405_with_allow() -> None:
    response = TestClient(_app()).get("/oauth/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_other_paths_fall_through_to_later_routes() -> None:
    client = TestClient(_app(Route("/hello", _named("hello"))))
    assert client.get("/hello").text == "hello"
    assert client.get("/nowhere").status_code == 404


def test_a_catch_all_route_listed_later_does_not_shadow_the_members() -> None:
    client = TestClient(_app(Route("/{anything:path}", _named("catch-all"), methods=["GET", "POST"])))
    assert client.post("/oauth/token").text == "token"
    assert client.get("/oauth/other").text == "catch-all"


def test_members_answer_under_a_mount_prefix() -> None:
    app = Starlette(routes=[Mount("/api", routes=LiteralRoutes.group(MEMBERS))])
    assert TestClient(app).get("/api/oauth/authorize").text == "authorize"


def test_url_path_for_finds_members_by_name() -> None:
    app = _app()
    assert app.url_path_for("authorize") == "/oauth/authorize"
    with pytest.raises(NoMatchFound):
        app.url_path_for("missing")


def test_routes_with_parameters_are_not_grouped() -> None:
    routes = [*MEMBERS, Route("/items/{item_id}", _named("item"))]
    assert LiteralRoutes.group(routes) == routes


def test_the_bridge_puts_the_shim_in_front_as_one_route_once() -> None:
    url = "http://127.0.0.1:8000"
    issuer = TokenIssuer()
    app = FastAPI()
    bridge = MCPBridge(app, auth=issuer.shim(url))
    bridge.mount_http("/mcp", stateless=True)
    bridge.mount_sse("/sse")
    groups = [r for r in app.router.routes if isinstance(r, LiteralRoutes)]
    assert len(groups) == 1
    assert {r.path for r in groups[0].routes} == {r.path for r in bridge.auth.routes}
    with TestClient(app) as client:
        metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200 and metadata.json()["issuer"] == url

"""A tool call runs its own route or nothing.

Through the public HTTP surface (`MCPBridge(app, auth=shim).mount_http()`, a real server, real
bearer tokens), on both answer paths (the endpoint's fast path and the SDK's): an argument the
tool's path convertor refuses never falls through to a later route that needs a scope or was
filtered out, and a path argument never reaches a route mounted after the tools were built
(the MCP endpoint, the shim's `/oauth/*` and `/.well-known/*`). In process, the same rule
against route tables that change after the bridge was built.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, Security
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_bridge import MCPBridge
from mcp_bridge.calls import build_request
from tests.bridge.conftest import origin_scope
from tests.bridge.sample_app import scoped
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.servers import bind_loopback, serve_asgi

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
TEMPLATE_PARAMS = re.compile(r"\{([^{}:]+)(:[^{}]+)?\}")


@dataclass
class Seen:
    """Every request that reached the app (the MCP request and in-process tool calls alike),
    and every route that ran."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    routes: list[tuple[str, object]] = field(default_factory=list)


class RecordRequests:
    def __init__(self, app: ASGIApp, seen: Seen) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def attack_app() -> tuple[FastAPI, Seen]:
    """`/items/{item_id:int}` for everyone, then `/items/{name}` for admins only; tools whose
    paths are all parameters, listed after everything the bridge and the shim mount."""
    app = FastAPI()
    seen = Seen()
    app.add_middleware(RecordRequests, seen=seen)

    @app.get("/items/{item_id:int}", operation_id="get_item")
    def get_item(item_id: int) -> dict[str, int]:
        seen.routes.append(("get_item", item_id))
        return {"item_id": item_id}

    @app.get("/items/{name}", operation_id="admin_item")
    def admin_item(name: str, scopes: Annotated[list[str], Security(scoped, scopes=["admin"])]) -> dict[str, str]:
        seen.routes.append(("admin_item", name))
        return {"secret": name}

    @app.post("/{a}/{b}", operation_id="post_pair")
    def post_pair(a: str, b: str) -> dict[str, str]:
        seen.routes.append(("post_pair", (a, b)))
        return {"a": a, "b": b}

    @app.get("/{a}/{b}", operation_id="get_pair")
    def get_pair(a: str, b: str) -> dict[str, str]:
        seen.routes.append(("get_pair", (a, b)))
        return {"a": a, "b": b}

    @app.post("/{a}", operation_id="post_one")
    def post_one(a: str) -> dict[str, str]:
        seen.routes.append(("post_one", a))
        return {"a": a}

    return app, seen


@dataclass
class Served:
    url: str
    issuer: TokenIssuer
    seen: Seen

    def call(self, tool: str, arguments: dict[str, Any], *scopes: str) -> tuple[int, dict[str, Any]]:
        """One `tools/call` with a token holding `scopes`: (HTTP status, the result); `seen`
        then holds what this call alone reached."""
        token = self.issuer.token(audience=self.url + "/mcp", scopes=scopes)
        body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        self.seen.requests.clear()
        self.seen.routes.clear()
        response = httpx.post(
            self.url + "/mcp", json=body, headers={**ACCEPT, "authorization": f"Bearer {token}"}, timeout=10
        )
        if response.status_code != 200:
            return response.status_code, {}
        if response.headers["content-type"].startswith("text/event-stream"):
            data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
            return 200, json.loads(data[-1])["result"]
        return 200, response.json()["result"]


@contextlib.contextmanager
def served(*, fast_path: bool, admin_guard: str) -> Iterator[Served]:
    """The attack app behind `MCPBridge(app, auth=shim)`; the admin route is kept from tokens
    without scope `admin` (`admin_guard="scope"`) or filtered out of the tools ("filter")."""
    sock = bind_loopback()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    issuer = TokenIssuer()
    app, seen = attack_app()
    shim = issuer.shim(url, scopes_supported=["admin"])
    filters = {"exclude_operations": ["admin_item"]} if admin_guard == "filter" else {}
    MCPBridge(app, auth=shim, fast_path=fast_path, **filters).mount_http("/mcp", stateless=True)
    with serve_asgi(app, sock) as running:
        yield Served(running.url, issuer, seen)


@pytest.fixture(
    scope="module",
    params=[(True, "scope"), (False, "scope"), (True, "filter"), (False, "filter")],
    ids=["fast-path-scope", "sdk-scope", "fast-path-filter", "sdk-filter"],
)
def server(request: pytest.FixtureRequest) -> Iterator[Served]:
    fast_path, admin_guard = request.param
    with served(fast_path=fast_path, admin_guard=admin_guard) as running:
        yield running


def _text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


def test_argument_that_fits_the_convertor_runs_the_tools_own_route(server: Served) -> None:
    status, result = server.call("get_item", {"item_id": 7})
    assert (status, result["isError"], result["structuredContent"]) == (200, False, {"item_id": 7})
    assert server.seen.routes == [("get_item", 7)]


@pytest.mark.parametrize("item_id", ["everything", -1, "7", 1.5, True])
def test_argument_the_path_convertor_refuses_never_reaches_the_later_admin_route(server: Served, item_id: Any) -> None:
    status, result = server.call("get_item", {"item_id": item_id})
    assert (status, result["isError"]) == (200, True)
    assert "'item_id'" in _text(result)
    assert server.seen.routes == []
    assert server.seen.requests == [("POST", "/mcp")]  # no in-process request was made at all


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("post_pair", {"a": "oauth", "b": "register"}),
        ("post_pair", {"a": "oauth", "b": "token"}),
        ("get_pair", {"a": "oauth", "b": "authorize"}),
        ("get_pair", {"a": ".well-known", "b": "oauth-authorization-server"}),
        ("get_pair", {"a": ".well-known", "b": "openid-configuration"}),
        ("post_one", {"a": "mcp"}),
    ],
)
def test_path_arguments_never_reach_routes_mounted_after_the_tools(
    server: Served, tool: str, arguments: dict[str, str]
) -> None:
    status, result = server.call(tool, arguments)
    assert (status, result["isError"]) == (200, True)
    assert all(f"'{name}'" in _text(result) for name in arguments)
    assert "nothing was called" in _text(result)
    assert server.seen.routes == []
    assert server.seen.requests == [("POST", "/mcp")]


def test_path_arguments_never_reach_an_earlier_admin_route(server: Served) -> None:
    status, result = server.call("get_pair", {"a": "items", "b": "everything"})
    assert (status, result["isError"]) == (200, True)
    assert server.seen.routes == []


def test_same_tool_runs_when_its_own_route_is_the_first_match(server: Served) -> None:
    status, result = server.call("post_pair", {"a": "oauth", "b": "elsewhere"})
    assert (status, result["isError"]) == (200, False)
    assert server.seen.routes == [("post_pair", ("oauth", "elsewhere"))]


def test_admin_tool_itself_needs_its_scope_or_is_not_a_tool() -> None:
    with served(fast_path=True, admin_guard="scope") as scoped_server:
        denied, _ = scoped_server.call("admin_item", {"name": "x"})
        granted, allowed = scoped_server.call("admin_item", {"name": "x"}, "admin")
    with served(fast_path=True, admin_guard="filter") as filtered_server:
        _, unknown = filtered_server.call("admin_item", {"name": "x"}, "admin")
    assert (denied, granted, allowed["isError"]) == (403, 200, False)
    assert _text(unknown) == "Unknown tool: admin_item"


# -- the live route table: routes that change after the bridge was built --------------------


async def _call(bridge: MCPBridge, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return await bridge.call(tool, arguments, origin_scope())


def _files_app() -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    ran: list[str] = []

    @app.get("/files/{name}", operation_id="read_file")
    def read_file(name: str) -> dict[str, str]:
        ran.append(name)
        return {"name": name}

    return app, ran


def _secret_app(ran: list[str]) -> Starlette:
    async def secret(request: Any) -> PlainTextResponse:
        ran.append("secret")
        return PlainTextResponse("secret")

    return Starlette(routes=[Route("/{name}", secret)])


@pytest.mark.anyio
async def test_route_inserted_in_front_after_the_bridge_is_never_reached() -> None:
    app, ran = _files_app()
    bridge = MCPBridge(app)
    assert (await _call(bridge, "read_file", {"name": "a"}))["isError"] is False
    app.router.routes.insert(0, Mount("/files", app=_secret_app(ran)))
    result = await _call(bridge, "read_file", {"name": "b"})
    assert result["isError"] is True and "'name'" in _text(result)
    assert ran == ["a"]


@pytest.mark.anyio
async def test_route_added_to_an_included_router_after_the_bridge_is_never_reached() -> None:
    app = FastAPI()
    ran: list[str] = []
    router = APIRouter()
    router.add_api_route("/r/placeholder", lambda: ran.append("placeholder"), methods=["GET"])
    app.include_router(router)

    @app.get("/r/{x}", operation_id="read_r")
    def read_r(x: str) -> dict[str, str]:
        ran.append(x)
        return {"x": x}

    bridge = MCPBridge(app)
    router.add_api_route("/r/secret", lambda: ran.append("secret"), methods=["GET"])
    await _call(bridge, "read_r", {"x": "secret"})
    assert "secret" not in ran  # refused where included routers stay live, else served by read_r


@pytest.mark.anyio
async def test_literal_route_listed_after_a_matching_parameter_route_is_not_run() -> None:
    app = FastAPI()
    ran: list[str] = []

    @app.get("/things/{name}", operation_id="read_thing")
    def read_thing(name: str) -> None:
        ran.append(name)

    @app.get("/things/special", operation_id="special")
    def special() -> None:
        ran.append("special route")

    result = await _call(MCPBridge(app), "special", {})
    assert result["isError"] is True and "different route" in _text(result)
    assert ran == []


@pytest.mark.anyio
async def test_tool_whose_route_was_removed_calls_nothing() -> None:
    app, ran = _files_app()
    bridge = MCPBridge(app)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "name", "") != "read_file"]
    result = await _call(bridge, "read_file", {"name": "a"})
    assert result["isError"] is True and "no longer serves" in _text(result)
    assert ran == []


@pytest.mark.anyio
async def test_route_replaced_in_place_is_seen_after_refresh() -> None:
    app, ran = _files_app()
    bridge = MCPBridge(app)
    await _call(bridge, "read_file", {"name": "a"})
    position = next(i for i, r in enumerate(app.router.routes) if getattr(r, "name", "") == "read_file")
    app.router.routes[position - 1] = Mount("/files", app=_secret_app(ran))
    bridge.refresh()
    assert (await _call(bridge, "read_file", {"name": "b"}))["isError"] is True
    assert ran == ["a"]


# -- differential: OwnRoute.serves against the router's own choice -----------------------------


def routing_app() -> tuple[FastAPI, list[str]]:
    """Routes whose matches overlap in every way the router resolves: literals before and after
    parameters, convertors, `{x:path}`, the same path under two methods, an included router,
    a mount and a `LiteralRoutes` group in front (as `mount_http` puts the shim's routes)."""
    from mcp_bridge.routes import LiteralRoutes

    app = FastAPI()
    ran: list[str] = []

    def endpoint(name: str) -> Any:
        def run(**path_params: Any) -> dict[str, str]:
            ran.append(name)
            return {"ran": name}

        # Declared path parameters (of any type: the route runs whatever the convertor gives).
        parameters = [
            inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=Any)
            for p, _ in TEMPLATE_PARAMS.findall(name)
        ]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return run

    def plain(name: str) -> Any:
        async def run(request: Any) -> PlainTextResponse:
            ran.append(name)
            return PlainTextResponse(name)

        return run

    routes = [
        ("GET", "/items/admin"),
        ("GET", "/items/{item_id:int}"),
        ("GET", "/items/{name}"),
        ("POST", "/items/{name}"),
        ("GET", "/items/{item_id}/admin"),
        ("GET", "/files/{rest:path}"),
        ("GET", "/files/{name}"),
        ("GET", "/{a}/{b}"),
        ("POST", "/{a}/{b}"),
        ("GET", "/{a}"),
        ("GET", "/v/{x:float}/{y:uuid}"),
        ("GET", "/{a}/{b}/{c}"),
        ("GET", "/lit/after"),
    ]
    for n, (method, path) in enumerate(routes):
        app.add_api_route(path, endpoint(f"{method} {path}"), methods=[method], operation_id=f"op{n}")
    router = APIRouter(prefix="/inc")
    router.add_api_route("/{x}", endpoint("GET /inc/{x}"), methods=["GET"], operation_id="inc_x")
    router.add_api_route("/lit", endpoint("GET /inc/lit"), methods=["GET"], operation_id="inc_lit")
    app.include_router(router)
    app.add_api_route("/inc/{x}/deep", endpoint("GET /inc/{x}/deep"), methods=["GET"], operation_id="deep")
    front = [Route("/oauth/register", plain("shim register"), methods=["POST"])]
    front += [Route("/.well-known/meta", plain("shim metadata"), methods=["GET"])]
    app.router.routes[0:0] = [Mount("/mounted", app=_secret_app(ran)), *LiteralRoutes.group(front)]
    return app, ran


VALUES = [
    "admin",
    "7",
    "-1",
    "1.5",
    "123e4567-e89b-12d3-a456-426614174000",
    "oauth",
    "register",
    ".well-known",
    "meta",
    "mounted",
    "lit",
    "inc",
    "files",
    "v",
    "x y",
]


@pytest.mark.anyio
async def test_own_route_check_agrees_with_the_router_for_every_request() -> None:
    import dataclasses
    import itertools

    from mcp_bridge.arguments import ArgumentChecks
    from mcp_bridge.calls import build_request, run_request

    app, ran = routing_app()
    bridge = MCPBridge(app)
    disagreements = []
    outcomes = {True: 0, False: 0}
    for spec in bridge.specs:
        unchecked = dataclasses.replace(spec, own_route=None)
        unchecked._checks = ArgumentChecks(dict.fromkeys(spec.arguments), ())
        pool = VALUES if len(spec.path_params) < 3 else VALUES[:7]
        for values in itertools.product(pool, repeat=len(spec.path_params)):
            arguments = dict(zip(spec.path_params, values, strict=True))
            scope, body = build_request(unchecked, arguments, origin_scope(), frozenset())
            ran.clear()
            await run_request(app, dict(scope), body)
            assert spec.own_route is not None
            served = spec.own_route.serves(scope)
            if served != (ran == [f"{spec.method} {spec.route.path}"]):
                disagreements.append((spec.method, spec.route.path, arguments, ran[:]))
            outcomes[served] += 1
    assert disagreements == []
    assert min(outcomes.values()) > 100  # both answers were compared, many times


class _AnythingConvertor(Convertor[str]):
    """An app's own convertor whose pattern spans segments, as `register_url_convertor` allows."""

    regex = ".+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


@pytest.mark.anyio
async def test_an_earlier_route_with_a_custom_convertor_spanning_segments_is_never_run() -> None:
    register_url_convertor("anything", _AnythingConvertor())
    app = FastAPI()
    ran: list[str] = []

    @app.get("/files/{rest:anything}", include_in_schema=False)
    def admin(rest: str) -> dict[str, str]:
        ran.append("admin " + rest)
        return {"admin": rest}

    @app.get("/files/{a}/{b}", operation_id="pair")
    def pair(a: str, b: str) -> dict[str, str]:
        ran.append("pair")
        return {"a": a, "b": b}

    result = await _call(MCPBridge(app), "pair", {"a": "u", "b": "v"})
    assert result["isError"] is True and "different route" in _text(result)
    assert ran == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"name": "\ud800"}, "'name'"),
        ({"name": "ok", "note": "\udfff"}, "lone surrogate"),
        ({"name": "ok", "x-note": "\u20ac"}, "'x-note'"),
    ],
    ids=["path", "query", "header outside latin-1"],
)
async def test_text_that_cannot_be_sent_is_a_tool_error_naming_it(arguments: dict[str, Any], named: str) -> None:
    app = FastAPI()
    ran: list[str] = []

    @app.get("/notes/{name}", operation_id="read_note")
    def read_note(
        name: str, note: str | None = None, x_note: Annotated[str | None, Header(alias="x-note")] = None
    ) -> dict[str, str]:
        ran.append(name)
        return {"name": name}

    result = await _call(MCPBridge(app), "read_note", arguments)
    assert result["isError"] is True
    assert named in _text(result) and "internal error" not in _text(result)
    assert ran == []


@pytest.mark.parametrize("value", ["..;", "a;b", "x,y"])
def test_semicolons_and_commas_in_path_values_are_percent_encoded(value: str) -> None:
    # A remote server (`http_client`) may read "..;" as "..": only the encoded form is sent.
    app = FastAPI()

    @app.get("/notes/{name}", operation_id="read_note")
    def read_note(name: str) -> dict[str, str]:
        return {"name": name}

    (spec,) = MCPBridge(app).specs
    scope, _ = build_request(spec, {"name": value}, origin_scope(), frozenset())
    assert b";" not in scope["raw_path"] and b"," not in scope["raw_path"]
    assert scope["path"] == "/notes/" + value

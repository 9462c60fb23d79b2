"""The shadow index finds exactly the routes a pairwise comparison finds, only faster.

Which earlier routes could match a tool's request first is a security property (an argument
must never reach another route); the index only narrows the comparisons, so its answer must
equal comparing the tool's route with every earlier route.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Mount

from mcp_bridge.routes import PathShape, ShadowIndex, may_shadow, route_views
from tests.bridge.sample_app import build_app


def mixed_app() -> FastAPI:
    """Routes whose shapes exercise every branch: literals, parameters at each depth,
    `{x:path}`, a mount, an included router, same literals at different depths."""
    app = FastAPI()
    paths = [
        "/a/{x}",
        "/a/b",
        "/{x}/b",
        "/{x}/{y}",
        "/a/b/c",
        "/a/{x}/c",
        "/{x}/b/c",
        "/c/{x}/a",
        "/a",
        "/{x}",
        "/files/{rest:path}",
        "/files/{name}",
        "/files/{name}/meta",
        "/v1/r1/groups/{g}/items",
        "/v1/r2/groups/{g}/items",
        "/v1/{r}/groups/{g}/items",
        "/v1/r1/groups/{g}/items/{i}",
    ]
    for n, path in enumerate(paths):
        app.add_api_route(path, lambda: None, methods=["GET"], operation_id=f"op{n}")
    router = APIRouter(prefix="/inc")
    router.add_api_route("/{x}", lambda: None, methods=["GET"], operation_id="inc_x")
    router.add_api_route("/lit", lambda: None, methods=["GET"], operation_id="inc_lit")
    app.include_router(router)
    app.router.routes.append(Mount("/mounted", app=FastAPI()))
    app.add_api_route("/after/{x}", lambda: None, methods=["GET"], operation_id="after_x")
    return app


def pairwise(shapes: list[PathShape], position: int) -> list[int]:
    return [i for i in range(position) if may_shadow(shapes[i], shapes[position])]


@pytest.mark.parametrize("app_factory", [lambda: build_app()[0], mixed_app], ids=["sample", "mixed"])
def test_index_finds_what_comparing_every_pair_finds(app_factory: Any) -> None:
    shapes = [PathShape.of(route) for route in route_views(app_factory())]
    index = ShadowIndex(shapes)
    for position in range(len(shapes)):
        found = [i for i in index.candidates(position) if may_shadow(shapes[i], shapes[position])]
        assert found == pairwise(shapes, position), position

"""Which routes a tool call could reach: the app's route table, flattened, and shadowing.

Starlette matches a request against the routes in order and the first full match wins. A tool
built for `GET /items/{id}` must never serve `GET /items/admin` listed before it, whatever
the argument. Path arguments cannot add segments (calls.py refuses "/" and dot segments), so
only routes listed earlier, with the same segment count and compatible literal segments (or
a `{x:path}` parameter, or no path pattern at all), can shadow a tool's route; they are found
once, when tools are built, and checked with `route.matches` on each call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.convertors import PathConvertor
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class PathShape:
    """What the shadow check needs of a route, read once (route attributes can be slow views)."""

    segments: tuple[str, ...] | None  # None: not a path route (Mount, host, custom): always checked
    open_ended: bool  # has a {x:path} parameter
    literal: bool  # no parameter at all

    @classmethod
    def of(cls, route: Any) -> PathShape:
        path_format = getattr(route, "path_format", None)
        convertors = getattr(route, "param_convertors", None)
        if not isinstance(path_format, str) or convertors is None:
            return cls(None, True, False)
        open_ended = any(isinstance(c, PathConvertor) for c in convertors.values())
        return cls(tuple(path_format.split("/")), open_ended, "{" not in path_format)


def may_shadow(earlier: PathShape, mine: PathShape) -> bool:
    """Could the earlier route match some request path built for mine? (cheap, conservative)"""
    if mine.literal:
        return False  # a literal path is matched exactly; which route wins is the app's own business
    if earlier.segments is None or mine.segments is None:
        return True
    open_ended = mine.open_ended or earlier.open_ended
    if not open_ended and len(mine.segments) != len(earlier.segments):
        return False
    # Two literal segments that differ can never both match the same path. With a {x:path}
    # parameter somewhere, only the segments before the first parameter are compared.
    for a, b in zip(mine.segments, earlier.segments, strict=False):
        if "{" in a or "{" in b:
            if open_ended:
                return True
            continue
        if a != b:
            return False
    return True


class ShadowIndex:
    """Earlier routes in a trie of path segments (a parameter segment is the wildcard "{"), so
    that finding the routes that could shadow one route walks only the compatible branches
    instead of comparing it with every other route (500 routes: 125k pairs -> a handful)."""

    def __init__(self, shapes: Sequence[PathShape]) -> None:
        self.shapes = shapes
        self.wild: list[int] = []  # open-ended or not path routes: compared with everything
        # Per segment count, nested dicts keyed by segment (or "{"); leaves hold route indexes.
        self.tries: dict[int, dict[str, Any]] = {}
        for i, shape in enumerate(shapes):
            if shape.segments is None or shape.open_ended:
                self.wild.append(i)
                continue
            node = self.tries.setdefault(len(shape.segments), {})
            for segment in shape.segments:
                node = node.setdefault(_key(segment), {})
            node.setdefault(_LEAF, []).append(i)

    def candidates(self, position: int) -> list[int]:
        mine = self.shapes[position]
        if mine.literal:
            return []
        if mine.segments is None or mine.open_ended:
            return list(range(position))
        frontier = [self.tries.get(len(mine.segments), {})]
        for segment in mine.segments:
            key = _key(segment)
            following: list[dict[str, Any]] = []
            for node in frontier:
                if key == "{":
                    following.extend(child for name, child in node.items() if name != _LEAF)
                else:
                    following.extend(node[k] for k in (key, "{") if k in node)
            frontier = following
        found = [i for node in frontier for i in node.get(_LEAF, ())]
        return sorted(i for i in {*found, *self.wild} if i < position)


# Trie keys: "/" + a literal segment, or "{" for a parameter segment; "" holds the routes.
_LEAF = ""


def _key(segment: str) -> str:
    return "{" if "{" in segment else "/" + segment


class LiteralRoutes(BaseRoute):
    """Routes with fixed paths, tried by the router as one: a dict lookup instead of one
    regular expression per route.

    The bridge puts the shim's endpoints (a dozen paths) in front of the app's routes, where
    every request would otherwise try each of them first, tool calls twice (the MCP request,
    then the route the tool calls). Matching, 405s and ``url_path_for`` are the member routes'
    own; only the lookup is shared.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self._by_path: dict[str, Route] = {}
        for route in self.routes:
            self._by_path.setdefault(route.path, route)  # the first one wins, as in a router

    @staticmethod
    def group(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
        """``routes`` as one ``LiteralRoutes`` when every one is a parameterless HTTP route."""
        if all(isinstance(r, Route) and not r.param_convertors for r in routes):
            return [LiteralRoutes(routes)]  # type: ignore[arg-type]
        return list(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            route = self._by_path.get(get_route_path(scope))
            if route is not None:
                return route.matches(scope)
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._by_path[get_route_path(scope)].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            with contextlib.suppress(NoMatchFound):  # the next member may have that name
                return route.url_path_for(name, **path_params)
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"LiteralRoutes({[r.path for r in self.routes]!r})"


def route_views(app: FastAPI) -> list[Any]:
    """The app's routes in matching order, nested `include_router` trees flattened.

    FastAPI >= 0.16x keeps included routers as nodes and exposes their effective routes
    through `fastapi.routing.iter_route_contexts`; older versions copy routes into the app.
    """
    routes = [
        member
        for route in app.router.routes
        for member in (route.routes if isinstance(route, LiteralRoutes) else (route,))
    ]
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    if iterate is None:
        return routes
    return list(iterate(routes))


def is_api_route(view: Any) -> bool:
    return isinstance(getattr(view, "original_route", view), APIRoute)


def first_match_is(shadowing_routes: Sequence[Any], scope: dict[str, Any]) -> bool:
    """True if no route listed before the tool's own route fully matches this request."""
    for earlier in shadowing_routes:
        match, _ = earlier.matches(scope)
        if match is Match.FULL:
            return False
    return True

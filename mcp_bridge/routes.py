"""Which route a tool call reaches: the app's live route table, and the routes that could
match a tool's request before its own.

Starlette's router tries its routes in order and the first full match (path and method)
serves the request. A tool must be served by its own route or not called at all: never by a
route listed earlier that its arguments happen to match (`GET /items/admin` before
`GET /items/{id}`), never by a later one its own route refuses (`/items/{id:int}` given "all"
falls through to `/items/{name}`), never by a route mounted after the tools were built (the
MCP endpoint, the shim's `/oauth/*` and `/.well-known/*`).

`LiveRoutes` reads the router's table in matching order and notices when it changes; for each
tool, `OwnRoute` keeps the few routes that could match one of its requests - those listed
before its own with a compatible path shape - and checks, per call, that none of them matches
fully and that its own route does.
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
from starlette.convertors import FloatConvertor, IntegerConvertor, StringConvertor, UUIDConvertor
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

_SINGLE_SEGMENT = (StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor)


@dataclass(frozen=True, slots=True)
class PathShape:
    """What the shadow check needs of a route, read once (route attributes can be slow views)."""

    segments: tuple[str, ...] | None  # None: not a path route (Mount, host, custom): always checked
    open_ended: bool  # has a parameter that may match '/' ({x:path}, or a convertor of the app's own)
    literal: bool  # no parameter at all

    @classmethod
    def of(cls, route: Any) -> PathShape:
        path_format = getattr(route, "path_format", None)
        convertors = getattr(route, "param_convertors", None)
        if not isinstance(path_format, str) or convertors is None:
            return cls(None, True, False)
        # Only Starlette's own single-segment convertors are known never to match '/'; any other
        # (path, or one registered by the app, whose regex may be '.+') can span segments.
        open_ended = any(type(c) not in _SINGLE_SEGMENT for c in convertors.values())
        return cls(tuple(path_format.split("/")), open_ended, "{" not in path_format)


def may_shadow(earlier: PathShape, mine: PathShape) -> bool:
    """Could the earlier route match some request path built for mine? (cheap, conservative)"""
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
        # Reversed, so that the first route of a path wins, as in a router.
        self._by_path: dict[str, Route] = {route.path: route for route in reversed(self.routes)}

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
    return _expanded(ungrouped(app.router.routes))


def ungrouped(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes` with each `LiteralRoutes` group replaced by its member routes."""
    return [member for route in routes for member in (route.routes if isinstance(route, LiteralRoutes) else (route,))]


def is_api_route(view: Any) -> bool:
    return isinstance(getattr(view, "original_route", view), APIRoute)


def _expanded(routes: Sequence[BaseRoute]) -> list[Any]:
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    return list(routes) if iterate is None else list(iterate(routes))


def _identity(view: Any) -> tuple[int, str | None]:
    """The same route in any reading of the table: the route object and the path it has there
    (one router can be included twice, under two prefixes)."""
    return id(getattr(view, "original_route", view)), getattr(view, "path_format", None)


def _route_lists(routes: list[Any], seen: set[int]) -> list[list[Any]]:
    """`routes` and the route lists of the routers included in it, at any depth, each once: where
    a route added later changes what the router matches. (FastAPI >= 0.16x includes a router
    as one node whose routes stay live; older versions copied them, which this finds empty.)"""
    seen.add(id(routes))
    found = [routes]
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if isinstance(inner, list) and id(inner) not in seen:
            found.extend(_route_lists(inner, seen))
    return found


class LiveRoutes:
    """The app's route table as the router reads it on each request, re-read when it changes.

    Whether it changed is decided per call, so it must be cheap: the route lists are compared
    by object and length (a list that grew or shrank, or was replaced). A route replaced in
    place, at the same index of the same list, is not noticed: `MCPBridge.refresh()` re-reads.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self.epoch = 0
        self._top: list[Any] | None = None
        self._top_length = -1
        self._nested: tuple[tuple[list[Any], int], ...] = ()
        self.views: list[Any] = []
        self.shapes: list[PathShape] = []
        self._groups: dict[int, list[PathShape]] = {}
        self._index = ShadowIndex([])
        self._positions: dict[tuple[int, str | None], int] = {}

    def current(self) -> int:
        """The table's epoch, after re-reading it if it changed since the last call."""
        routes = self._app.router.routes
        if routes is not self._top or len(routes) != self._top_length or (self._nested and any(len(lst) != length for lst, length in self._nested)):
            self._reload()
        return self.epoch

    def _reload(self) -> None:
        routes = self._app.router.routes
        lists = _route_lists(routes, set())
        self._top, self._top_length = routes, len(routes)
        self._nested = tuple((lst, len(lst)) for lst in lists[1:])
        # The routes the router tries, in its order; unlike `route_views`, a `LiteralRoutes`
        # group stays one entry (the router asks it once).
        self.views = _expanded(routes)
        self.shapes = [PathShape.of(view) for view in self.views]
        self._groups = {
            i: [PathShape.of(member) for member in view.routes]
            for i, view in enumerate(getattr(v, "original_route", v) for v in self.views)
            if isinstance(view, LiteralRoutes)
        }
        self._index = ShadowIndex(self.shapes)
        # Where each route is first in the table (as for the router, the first one wins).
        self._positions = {_identity(view): position for position, view in reversed(list(enumerate(self.views)))}
        self.epoch += 1

    def plan(self, route: Any) -> tuple[tuple[Any, ...], Any]:
        """(the `matches` of every route that could serve a request for `route` first,
        `route`'s own path pattern in the live table, or None when the app no longer serves it)."""
        position = self._positions.get(_identity(route))
        if position is None:
            return (), None
        mine = self.shapes[position]
        earlier = tuple(
            self.views[i].matches
            for i in self._index.candidates(position)
            if (
                any(may_shadow(member, mine) for member in self._groups[i])
                if i in self._groups
                else may_shadow(self.shapes[i], mine)
            )
        )
        return earlier, self.views[position].path_regex


class OwnRoute:
    """One tool's route in the live table: does the router send this request to it?"""

    __slots__ = ("_earlier", "_epoch", "_own", "_route", "_table")

    def __init__(self, table: LiveRoutes, route: Any) -> None:
        self._table = table
        self._route = route
        self._epoch = -1
        self._earlier: tuple[Any, ...] = ()
        self._own: Any = None

    @property
    def served(self) -> bool:
        """Whether the app still has this route (as of the last check)."""
        return self._own is not None

    def serves(self, scope: Scope) -> bool:
        """True if the first route that fully matches `scope` (path and method, as the router
        decides) is this tool's own route.

        The own route is tested with its path pattern alone (what `Route.matches` tests
        first): the method is the tool's by construction, and the path parameters' conversion
        and the child scope that `matches` builds are not needed here (bench tool, loaded
        shared machine: 0.9 µs instead of 5.9 µs per call).
        """
        epoch = self._table.current()
        if epoch != self._epoch:
            self._earlier, self._own = self._table.plan(self._route)
            self._epoch = epoch
        try:
            for matches in self._earlier:
                if matches(scope)[0] is Match.FULL:
                    return False
            own = self._own
            return own is not None and own.match(get_route_path(scope)) is not None
        except Exception:  # noqa: BLE001 - a convertor that raises: the router would fail on it too
            return False

"""Which routes a tool call could reach: the app's route table, flattened, and shadowing.

Starlette matches a request against the routes in order and the first full match wins. A tool
built for `GET /items/{id}` must never serve `GET /items/admin` listed before it, whatever
the argument. Path arguments cannot add segments (calls.py refuses "/" and dot segments), so
only routes listed earlier, with the same segment count and compatible literal segments (or
a `{x:path}` parameter, or no path pattern at all), can shadow a tool's route; they are found
once, when tools are built, and checked with `route.matches` on each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from starlette.convertors import PathConvertor
from starlette.routing import Match


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
    """Earlier routes bucketed by (segment count, first segment), so that finding the routes
    that could shadow one route does not compare it with every other route (500 routes: 125k
    pairs -> a handful)."""

    def __init__(self, shapes: Sequence[PathShape]) -> None:
        self.shapes = shapes
        self.wild: list[int] = []  # open-ended or not path routes: compared with everything
        self.by_first: dict[tuple[int, str], list[int]] = {}
        self.by_length: dict[int, list[int]] = {}
        for i, shape in enumerate(shapes):
            if shape.segments is None or shape.open_ended:
                self.wild.append(i)
                continue
            self.by_length.setdefault(len(shape.segments), []).append(i)
            self.by_first.setdefault((len(shape.segments), self._first(shape)), []).append(i)

    @staticmethod
    def _first(shape: PathShape) -> str:
        assert shape.segments is not None
        first = shape.segments[1] if len(shape.segments) > 1 else ""
        return "{" if "{" in first else first

    def candidates(self, position: int) -> list[int]:
        mine = self.shapes[position]
        if mine.literal:
            return []
        if mine.segments is None or mine.open_ended:
            return list(range(position))
        length, first = len(mine.segments), self._first(mine)
        if first == "{":
            found = list(self.by_length.get(length, ()))
        else:
            found = self.by_first.get((length, first), []) + self.by_first.get((length, "{"), [])
        return sorted(i for i in {*found, *self.wild} if i < position)


def route_views(app: FastAPI) -> list[Any]:
    """The app's routes in matching order, nested `include_router` trees flattened.

    FastAPI >= 0.16x keeps included routers as nodes and exposes their effective routes
    through `fastapi.routing.iter_route_contexts`; older versions copy routes into the app.
    """
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    if iterate is None:
        return list(app.router.routes)
    return list(iterate(app.router.routes))


def is_api_route(view: Any) -> bool:
    return isinstance(getattr(view, "original_route", view), APIRoute)


def first_match_is(shadowing_routes: Sequence[Any], scope: dict[str, Any]) -> bool:
    """True if no route listed before the tool's own route fully matches this request."""
    for earlier in shadowing_routes:
        match, _ = earlier.matches(scope)
        if match is Match.FULL:
            return False
    return True

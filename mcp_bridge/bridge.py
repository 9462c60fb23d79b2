"""MCPBridge: a FastAPI app's routes served as MCP tools on the official `mcp` SDK.

Wiring only: the tool table comes from `tools.py`, calls run through `calls.py`, the endpoint
is `transport.py`, scope challenges `auth.py`. Three auth modes:

* `auth=OAuthShim(...)`: the shim's OAuth routes are added where the endpoint is mounted, the
  endpoint is wrapped in `shim.protect(...)` (RFC 6750 401/403 with RFC 9728
  `resource_metadata`), and per-route `Security(..., scopes=[...])` become per-tool
  requirements with 403 `insufficient_scope` step-up challenges;
* `auth=None`: token passthrough - the client's `Authorization` header reaches the routes,
  which decide;
* `auth=None, dependencies=[Depends(...)]`: those FastAPI dependencies guard the endpoint,
  and a refusal always carries a `WWW-Authenticate: Bearer` challenge.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRoute, APIRouter
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_bridge.auth import ScopeGuard, granted_scopes
from mcp_bridge.calls import call_tool, unknown_tool
from mcp_bridge.handshake import InitializeAnswer
from mcp_bridge.registry import ToolRegistry
from mcp_bridge.results import encode_result, error_result, is_error_result
from mcp_bridge.routes import LiteralRoutes, is_api_route, route_views, ungrouped
from mcp_bridge.security import HostOriginPolicy, default_allowed
from mcp_bridge.sessions import DEFAULT_MAX_SESSIONS_PER_CALLER
from mcp_bridge.tools import Filters, ToolSpec, collect_tools
from mcp_bridge.transport import MCPEndpoint
from mcp_oauth_shim.telemetry import tool_call

if TYPE_CHECKING:
    import httpx
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel.server import Server
    from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams, Tool

    from mcp_bridge.sse import SSEEndpoint

logger = logging.getLogger(__name__)

_METHODS = ["GET", "POST", "DELETE"]


class BridgeAuth(Protocol):
    """What the bridge needs of its `auth`: an `OAuthShim` (or the compat layer's deferred one)."""

    @property
    def routes(self) -> Sequence[BaseRoute]: ...
    @property
    def resource_metadata_url(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def public_url(self) -> str | None: ...

    def protect(self, app: ASGIApp, *, scopes: Sequence[str] = ()) -> ASGIApp: ...
    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[None]: ...


# One mounted ASGI app of an endpoint: its path, the app, the HTTP methods it answers.
_Placement = tuple[str, ASGIApp, list[str]]


class MCPBridge:
    """Serve `app`'s operations as MCP tools. See docs/bridge.md."""

    def __init__(
        self,
        app: FastAPI,
        *,
        auth: BridgeAuth | None = None,
        name: str | None = None,
        description: str | None = None,
        include_operations: Sequence[str] | None = None,
        exclude_operations: Sequence[str] | None = None,
        include_tags: Sequence[str] | None = None,
        exclude_tags: Sequence[str] | None = None,
        describe_all_responses: bool = False,
        describe_full_response_schema: bool = False,
        forward_headers: Sequence[str] = ("authorization",),
        dependencies: Sequence[Depends] = (),
        short_names: bool = False,
        hide_unreachable_tools: bool = False,
        fast_path: bool = True,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.name = name or app.title
        self.description = description if description is not None else (app.description or None)
        self.filters = Filters.of(include_operations, exclude_operations, include_tags, exclude_tags)
        self.describe_all_responses = describe_all_responses
        self.describe_full_response_schema = describe_full_response_schema
        self.forward_headers = frozenset(h.lower() for h in forward_headers)
        self._forward_header_bytes = frozenset(h.encode("latin-1") for h in self.forward_headers)
        self.dependencies = list(dependencies)
        self.short_names = short_names
        self.hide_unreachable_tools = hide_unreachable_tools
        self.fast_path = fast_path
        # FastAPI-MCP's option: an httpx.AsyncClient (base_url = the API) to call the routes
        # over HTTP instead of in-process; slower, for an API that runs elsewhere.
        self.http_client = http_client
        self._mounted_paths: set[str] = set()
        self._lifespan_routers: set[int] = set()  # routers whose lifespan closes the shim
        # Whether anyone outside the bridge was handed the SDK `Server` (and may have changed
        # what `initialize` answers): then only the SDK answers it.
        self._server_shared = False
        # What the endpoint answers `initialize` with while that is the SDK `Server`'s default.
        self._initialize_answer = InitializeAnswer(
            name=self.name, version=app.version or "", description=self.description, instructions=self.description
        )
        self._registry = self._build_registry()

    @property
    def server(self) -> Server:
        """The SDK's low-level `Server` behind every mounted endpoint (created on first use)."""
        self._server_shared = True
        return self._sdk_server

    @functools.cached_property
    def _sdk_server(self) -> Server:
        from mcp.server.lowlevel.server import Server

        return Server(
            self.name,
            version=self.app.version or "",
            description=self.description,
            instructions=self.description,
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
        )

    def _initialize(self) -> InitializeAnswer | None:
        """What the endpoint answers `initialize` with, while that is the SDK `Server`'s default."""
        return None if self._server_shared else self._initialize_answer

    # -- tool table --------------------------------------------------------------------

    def _build_registry(self) -> ToolRegistry:
        specs = collect_tools(
            self.app,
            filters=self.filters,
            short_names=self.short_names,
            describe_all_responses=self.describe_all_responses,
            describe_full_response_schema=self.describe_full_response_schema,
            excluded_paths=self._mounted_paths,
        )
        if self.auth is not None:
            _check_scopes(specs)
        return ToolRegistry(specs, hide_unreachable=self.hide_unreachable_tools)

    def refresh(self) -> None:
        """Re-read the app's routes (call after adding routes once the bridge exists).

        FastAPI caches `app.openapi()`; the cache is cleared so the new routes appear.
        """
        self.app.openapi_schema = None
        self._registry = self._build_registry()

    @property
    def tools(self) -> list[Tool]:
        """The MCP tool definitions, as `tools/list` returns them to a caller with every scope."""
        return self._registry.tools()

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools' specifications (route, arguments, scopes), in `tools/list` order."""
        return self._registry.specs

    # -- execution ---------------------------------------------------------------------

    @overload
    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, origin: Scope, *, encoded: Literal[False] = ...
    ) -> dict[str, Any]: ...
    @overload
    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, origin: Scope, *, encoded: Literal[True]
    ) -> bytes: ...
    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, origin: Scope, *, encoded: bool = False
    ) -> dict[str, Any] | bytes:
        """Run tool `name` for the HTTP request `origin`; the wire `CallToolResult`.

        `encoded=True` gives its JSON bytes instead (what the endpoint's fast path sends),
        without building the result as a dict when the route answered JSON.
        """
        spec = self._registry.by_name.get(name)
        # Counted under its name when the app serves it; a client's made-up name is one label.
        with tool_call(name if spec is not None else "unknown_tool") as observed:
            answer = await self._call(spec, name, arguments, origin, encoded=encoded)
            if observed.active and is_error_result(answer):
                observed.outcome = "tool_error"
        return answer

    async def _call(
        self, spec: ToolSpec | None, name: str, arguments: Mapping[str, Any] | None, origin: Scope, *, encoded: bool
    ) -> dict[str, Any] | bytes:
        if spec is None:
            result = unknown_tool(name)
        elif not self._may_call(spec, origin):
            # The endpoint answers this with a 403 before the SDK; kept as a second line.
            result = {"content": [{"type": "text", "text": "insufficient_scope"}], "isError": True}
        else:
            try:
                forward = self._forward_header_bytes
                return await call_tool(self.app, spec, arguments, origin, forward, self.http_client, encoded=encoded)
            except Exception:
                # call_tool turns every app failure into a result; this is a bridge bug. Keep the
                # details in the log (they may hold request data), give the client a plain error.
                logger.exception("tool %s failed inside the bridge", name)
                result = error_result(f"Tool {name} failed: internal error")
        return encode_result(result) if encoded else result

    @staticmethod
    def _may_call(spec: ToolSpec, origin: Scope) -> bool:
        if not spec.scopes:
            return True
        granted = granted_scopes(origin)
        return granted is None or spec.scopes <= granted

    # The SDK's handlers (mcp.server.lowlevel.Server on_list_tools / on_call_tool): `ctx.request`
    # is the Starlette request that carried the message.

    async def _on_list_tools(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        import mcp_types

        origin = ctx.request.scope if ctx.request is not None else _EMPTY_ORIGIN
        return mcp_types.ListToolsResult(tools=self._registry.tools(granted_scopes(origin)))

    async def _on_call_tool(self, ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        import mcp_types

        origin: Scope = ctx.request.scope if ctx.request is not None else _EMPTY_ORIGIN
        result = await self.call(params.name, params.arguments, origin)
        return mcp_types.CallToolResult.model_validate(result)

    # -- mounting ----------------------------------------------------------------------

    def mount_http(
        self,
        path: str = "/mcp",
        *,
        router: FastAPI | APIRouter | None = None,
        stateless: bool = False,
        json_response: bool = False,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER,
    ) -> MCPEndpoint:
        """Serve Streamable HTTP at `path` on `router` (default: the app itself).

        The endpoint is placed first in the router, ahead of the app's routes; the shim's routes
        (with `auth`) follow it. The session manager runs in the router's lifespan; for an
        `APIRouter`, include it in its app after this call (FastAPI merges router lifespans).
        `max_sessions_per_caller` (stateful, with `auth`): the sessions one verified caller may
        hold open at once; a new one beyond it is answered 429.
        """
        _check_caller_limit(max_sessions_per_caller)
        host, host_router, route_path = self._host(router, path)
        endpoint = MCPEndpoint(
            server=lambda: self._sdk_server,
            registry=lambda: self._registry,
            call=lambda name, arguments, origin: self.call(name, arguments, origin, encoded=True),
            initialize=self._initialize,
            stateless=stateless,
            json_response=json_response,
            policy=self._host_origin_policy(allowed_hosts, allowed_origins),
            guard=self._scope_guard(),
            fast_path=self.fast_path,
        )
        endpoint.sessions.max_sessions_per_caller = max_sessions_per_caller
        self._mount(host, host_router, [(route_path, endpoint, _METHODS)], endpoint.run, announce=route_path)
        return endpoint

    def mount_sse(
        self,
        path: str = "/sse",
        *,
        router: FastAPI | APIRouter | None = None,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER,
    ) -> SSEEndpoint:
        """Serve the legacy HTTP+SSE transport: `GET path` (stream), `POST path/messages/`.

        For clients that predate Streamable HTTP (FastAPI-MCP's `mount_sse`); same auth,
        scope checks, Host/Origin policy and lifespan as `mount_http`. Every stream is a
        session: `max_sessions_per_caller` (with `auth`) bounds the streams one verified
        caller holds open at once, counted on this endpoint alone; a stream beyond it is
        answered 429, as `mount_http` answers a session beyond it. The endpoint's
        `max_sessions` (10 000, as `mount_http`'s) bounds all streams together (503 beyond).
        """
        from mcp_bridge.sse import SSEEndpoint  # the legacy transport: loaded only when mounted

        _check_caller_limit(max_sessions_per_caller)

        host, host_router, stream_path = self._host(router, path.rstrip("/"))
        messages_path = stream_path + "/messages/"
        endpoint = SSEEndpoint(
            server=lambda: self._sdk_server,
            messages_path=messages_path,
            policy=self._host_origin_policy(allowed_hosts, allowed_origins),
            guard=self._scope_guard(),
            max_sessions_per_caller=max_sessions_per_caller,
        )
        placements = [(stream_path, endpoint, ["GET"]), (messages_path, endpoint, ["POST"])]
        self._mount(host, host_router, placements, endpoint.run, announce=stream_path)
        return endpoint

    def _host(self, router: FastAPI | APIRouter | None, path: str) -> tuple[FastAPI | APIRouter, Router, str]:
        """The host, its router and the full path there (an APIRouter's routes carry its prefix)."""
        host = router if router is not None else self.app
        host_router = host.router if isinstance(host, FastAPI) else host
        prefix = getattr(host_router, "prefix", "")
        if prefix and self.auth is not None:
            from mcp_oauth_shim.config import ConfigurationError

            raise ConfigurationError(
                f"With auth, mount on the app or on an APIRouter without a prefix (this one has {prefix!r}): "
                "the shim's metadata must sit at the root of the origin (RFC 8414 section 3, RFC 9728 "
                "section 3), and the router would move it under its prefix."
            )
        return host, host_router, prefix + path

    def _mount(
        self,
        host: FastAPI | APIRouter,
        host_router: Router,
        placements: Sequence[_Placement],
        run: Callable[[], AbstractAsyncContextManager[None]],
        *,
        announce: str,
    ) -> None:
        """Place an endpoint's apps first in `host_router`, behind the bridge's auth, with the
        shim's routes after them, and run the endpoint (and the shim) in the router's lifespan.

        With `auth` the token is checked first (RFC 6750 answers from the shim's `RequireBearer`);
        `dependencies` then run on requests with a good token only.
        """
        routes: list[BaseRoute] = []
        for route_path, app, methods in placements:
            if self.dependencies:
                routes.append(self._gated_route(route_path, app, host, methods))
            else:
                protected = self.auth.protect(app) if self.auth is not None else app
                routes.append(Route(route_path, endpoint=protected, methods=methods, include_in_schema=False))
        if self.auth is not None and not self._shim_routes_added(host_router):
            # An APIRouter's routes are built again when it is included in an app, by code that
            # knows only FastAPI's and Starlette's own route types: a group would be dropped.
            grouped = isinstance(host, FastAPI)
            routes.extend(LiteralRoutes.group(self.auth.routes) if grouped else self.auth.routes)
        host_router.routes[0:0] = routes
        shim_lifespan = None
        if self.auth is not None and id(host_router) not in self._lifespan_routers:
            self._lifespan_routers.add(id(host_router))  # one close of the shim's connections per app
            shim_lifespan = self.auth.lifespan
        _extend_lifespan(host_router, run, shim_lifespan, on_start=lambda: self._announce(announce))
        if host is self.app:
            self._mounted_paths.update(path for path, _, _ in placements)

    def _announce(self, path: str) -> None:
        """Say at start-up what the endpoint serves; warn when the tool table looks stale.

        The bridge reads the app's routes when it is created (and on `refresh()`), so a bridge
        created before the routes were added serves none of them, silently unless told.
        """
        count = len(self._registry.specs)
        api_routes = sum(
            1
            for view in route_views(self.app)
            if is_api_route(view) and getattr(getattr(view, "original_route", view), "include_in_schema", True)
        )
        if count == 0:
            logger.warning(
                "MCP endpoint %s serves no tools although the app has %d API routes: the bridge reads the "
                "routes when it is created; create MCPBridge after adding them, or call bridge.refresh().",
                path,
                api_routes,
            )
        else:
            logger.info("MCP endpoint %s serves %d tools (from %d API routes)", path, count, api_routes)

    def _scope_guard(self) -> ScopeGuard | None:
        if self.auth is None:
            return None
        return ScopeGuard(lambda: self._registry, self.auth.resource_metadata_url)

    def _shim_routes_added(self, router: Router) -> bool:
        shim_routes = set(map(id, self.auth.routes)) if self.auth is not None else set()
        return any(id(route) in shim_routes for route in ungrouped(router.routes))

    def _host_origin_policy(
        self, allowed_hosts: Sequence[str] | None, allowed_origins: Sequence[str] | None
    ) -> HostOriginPolicy:
        # DNS rebinding protection (MCP 2025-11-25 "Transports", Security Warning) is always on:
        # loopback plus the shim's public host by default, the operator's lists otherwise.
        public = str(getattr(self.auth, "public_url", "") or self.auth.issuer) if self.auth is not None else None
        hosts, origins = default_allowed(public)
        return HostOriginPolicy(
            allowed_hosts=tuple(allowed_hosts) if allowed_hosts is not None else tuple(hosts),
            allowed_origins=tuple(allowed_origins) if allowed_origins is not None else tuple(origins),
        )

    def _gated_route(self, path: str, asgi: ASGIApp, host: FastAPI | APIRouter, methods: list[str]) -> APIRoute:
        """An APIRoute whose dependencies must pass before the MCP endpoint sees the request.

        With `auth`, the shim checks the token before the dependencies run, so a bad token
        gets RFC 6750 §3's answer (`invalid_token`, `scope`, `resource_metadata`, 400 for a
        malformed header, 502/504 JSON when the IdP is down) rather than whatever a
        dependency sends; the dependencies see verified requests only.
        """

        async def mcp_endpoint() -> Response:
            return _Delegate(asgi)

        overrides = host if isinstance(host, FastAPI) else getattr(host, "dependency_overrides_provider", None)
        route = APIRoute(
            path,
            mcp_endpoint,
            methods=methods,
            dependencies=self.dependencies,
            include_in_schema=False,
            dependency_overrides_provider=overrides,
        )
        metadata = self.auth.resource_metadata_url if self.auth is not None else None
        gate: ASGIApp = _ChallengeOnRefusal(route.app, metadata)
        route.app = self.auth.protect(gate) if self.auth is not None else gate
        return route


_EMPTY_ORIGIN: Scope = {"headers": [], "type": "http"}


class _Delegate(Response):
    """A response that hands the request on to an ASGI app (after dependencies passed)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class _ChallengeOnRefusal:
    """Turn a dependency's bare 401/403 into a 401 with a Bearer challenge (RFC 6750 §3).

    A request with no credentials is always answered 401 (not FastAPI-MCP's bare 403), so
    MCP clients start their authorization flow.
    """

    def __init__(self, app: ASGIApp, resource_metadata: str | None) -> None:
        from mcp_oauth_shim.rfc6750 import bearer_challenge

        self.app = app
        self.challenge = bearer_challenge(resource_metadata=resource_metadata).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_credentials = any(k == b"authorization" for k, _ in scope.get("headers", ()))

        async def send_with_challenge(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                headers = list(message.get("headers", ()))
                has_challenge = any(k.lower() == b"www-authenticate" for k, _ in headers)
                status = message["status"]
                if status == 403 and not has_credentials:
                    status = 401
                if status == 401 and not has_challenge:
                    headers.append((b"www-authenticate", self.challenge))
                message = {**message, "status": status, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_challenge)


def _extend_lifespan(
    router: Router,
    run: Callable[[], AbstractAsyncContextManager[None]],
    shim_lifespan: Callable[[Any], AbstractAsyncContextManager[None]] | None,
    on_start: Callable[[], None],
) -> None:
    """Run the endpoint (its session manager) and close the shim's IdP connections at the end,
    for as long as the router's app runs, around the app's own lifespan."""
    original = router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as stack:
            if shim_lifespan is not None:
                await stack.enter_async_context(shim_lifespan(app))
            await stack.enter_async_context(run())
            state = await stack.enter_async_context(original(app))
            on_start()
            yield state

    router.lifespan_context = lifespan


def _check_caller_limit(max_sessions_per_caller: int) -> None:
    """A caller must be able to hold at least one session (the mount would serve nobody)."""
    if max_sessions_per_caller < 1:
        raise ValueError("max_sessions_per_caller must be at least 1")


def _check_scopes(specs: Sequence[ToolSpec]) -> None:
    """Every scope a route declares must be an RFC 6749 §3.3 scope-token: no token could grant
    one with a space, a quote or a backslash, and no challenge (RFC 6750 §3) could ask for it.
    Found when the tools are built rather than at the first call that needs it."""
    from mcp_oauth_shim.config import ConfigurationError
    from mcp_oauth_shim.rfc6750 import is_scope_token

    for spec in specs:
        for scope in sorted(spec.scopes):
            if not is_scope_token(scope):
                raise ConfigurationError(
                    f"Route {spec.method} {spec.path_template} (tool {spec.name}) declares scope {scope!r}, "
                    "which is no OAuth scope (RFC 6749 section 3.3: no spaces, quotes or backslashes)."
                )

"""`FastApiMCP`: FastAPI-MCP 0.4's class and methods, served by `MCPBridge`."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI

from mcp_bridge.bridge import MCPBridge
from mcp_bridge.compat.config import ENV_PUBLIC_URL, AuthConfig, OAuthMetadata, public_url_of
from mcp_bridge.compat.deferred import DeferredShim, build_shim
from mcp_bridge.security import default_allowed
from mcp_bridge.sessions import DEFAULT_MAX_SESSIONS_PER_CALLER

if TYPE_CHECKING:
    import httpx
    from mcp.server.lowlevel.server import Server
    from mcp_types import Tool

    from mcp_bridge.sse import SSEEndpoint
    from mcp_bridge.transport import MCPEndpoint
    from mcp_oauth_shim import OAuthShim

__all__ = ["FastApiMCP"]

logger = logging.getLogger("mcp_bridge.compat")

class FastApiMCP:
    """FastAPI-MCP 0.4's `FastApiMCP`, served by `MCPBridge` (see the module docstring).

    Arguments are FastAPI-MCP's, in its order; one is ours: `public_url`, where clients reach
    this server (default: the `MCP_OAUTH_SHIM_PUBLIC_URL` variable). It is required with OAuth
    (`setup_proxies` or `custom_oauth_metadata`) and, without OAuth, adds its host to the hosts
    the endpoint answers (loopback only otherwise: DNS rebinding protection).
    """

    def __init__(
        self,
        fastapi: FastAPI,
        name: str | None = None,
        description: str | None = None,
        describe_all_responses: bool = False,
        describe_full_response_schema: bool = False,
        http_client: httpx.AsyncClient | None = None,
        include_operations: list[str] | None = None,
        exclude_operations: list[str] | None = None,
        include_tags: list[str] | None = None,
        exclude_tags: list[str] | None = None,
        auth_config: AuthConfig | Mapping[str, Any] | None = None,
        headers: Sequence[str] = ("authorization",),
        *,
        public_url: str | None = None,
    ) -> None:
        if include_operations is not None and exclude_operations is not None:
            raise ValueError("Cannot specify both include_operations and exclude_operations")
        if include_tags is not None and exclude_tags is not None:
            raise ValueError("Cannot specify both include_tags and exclude_tags")
        self.fastapi = fastapi
        self.name = name or fastapi.title or "FastAPI MCP"
        self.description = description or fastapi.description
        self._auth_config = AuthConfig.model_validate(auth_config) if auth_config is not None else None
        self.public_url = public_url_of(public_url or os.environ.get(ENV_PUBLIC_URL, ""))
        self._auth = self._deferred_shim(self._auth_config) if self._auth_config is not None else None
        self.bridge = MCPBridge(
            fastapi,
            auth=self._auth,
            name=self.name,
            description=self.description,
            include_operations=include_operations,
            exclude_operations=exclude_operations,
            include_tags=include_tags,
            exclude_tags=exclude_tags,
            describe_all_responses=describe_all_responses,
            describe_full_response_schema=describe_full_response_schema,
            forward_headers=tuple(headers),
            # With a shim that verifies tokens, the bridge checks the token before these run (the
            # shim's `RequireBearer`), so a bad token gets RFC 6750 §3's answer, as on an endpoint
            # without dependencies; they see only good tokens.
            dependencies=tuple(self._auth_config.dependencies or ()) if self._auth_config is not None else (),
            http_client=_api_client(http_client),
        )

    # -- FastAPI-MCP's read-only attributes --------------------------------------------

    @property
    def tools(self) -> list[Tool]:
        """The tools `tools/list` returns (`mcp_types.Tool` models)."""
        return self.bridge.tools

    @property
    def operation_map(self) -> dict[str, dict[str, Any]]:
        """Tool name -> the operation it calls (path, method, operation id, tags)."""
        return {
            spec.name: {
                "path": spec.path_template,
                "method": spec.method.lower(),
                "operation_id": spec.operation_id,
                "tags": list(spec.tags),
            }
            for spec in self.bridge.specs
        }

    @property
    def server(self) -> Server:
        """The mcp SDK 2.x low-level `Server` behind the endpoints."""
        return self.bridge.server

    @property
    def shim(self) -> OAuthShim | None:
        """The `OAuthShim` serving OAuth (None without OAuth or before the first mount)."""
        return self._auth.built if self._auth is not None else None

    # -- FastAPI-MCP's methods ---------------------------------------------------------

    def setup_server(self) -> None:
        """Re-read the app's routes (call after adding routes once the server exists)."""
        self.bridge.refresh()

    def mount_http(
        self,
        router: FastAPI | APIRouter | None = None,
        mount_path: str = "/mcp",
        *,
        stateless: bool = False,
        json_response: bool = False,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER,
    ) -> MCPEndpoint:
        """Serve Streamable HTTP at `mount_path` on `router` (default: the app).

        Keyword-only extras (ours): `stateless=True` for several workers or replicas without
        sticky sessions; `json_response`; `allowed_hosts` / `allowed_origins` for the Host and
        Origin checks (default: loopback plus the public URL's host); `max_sessions_per_caller`
        (the stateful sessions one verified caller may hold open at once).
        """
        host, path, allowed = self._placement(router, mount_path, allowed_hosts, allowed_origins)
        return self.bridge.mount_http(
            path,
            router=host,
            stateless=stateless,
            json_response=json_response,
            allowed_hosts=allowed["allowed_hosts"],
            allowed_origins=allowed["allowed_origins"],
            max_sessions_per_caller=max_sessions_per_caller,
        )

    def mount_sse(
        self,
        router: FastAPI | APIRouter | None = None,
        mount_path: str = "/sse",
        *,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_sessions_per_caller: int = DEFAULT_MAX_SESSIONS_PER_CALLER,
    ) -> SSEEndpoint:
        """Serve the legacy HTTP+SSE transport: `GET mount_path`, `POST mount_path/messages/`.

        Keyword-only extras (ours): `allowed_hosts` / `allowed_origins` as for `mount_http`;
        `max_sessions_per_caller` (the event streams one verified caller may hold open at once).
        """
        host, path, allowed = self._placement(router, mount_path, allowed_hosts, allowed_origins)
        return self.bridge.mount_sse(path, router=host, max_sessions_per_caller=max_sessions_per_caller, **allowed)

    def mount(
        self,
        router: FastAPI | APIRouter | None = None,
        mount_path: str = "/mcp",
        transport: Literal["sse"] = "sse",
    ) -> SSEEndpoint:
        """Deprecated in FastAPI-MCP 0.4: `mount_sse` (its default); use `mount_http`."""
        warnings.warn(
            "mount() is deprecated and will be removed in a future version. "
            "Use mount_http() for HTTP transport (recommended) or mount_sse() for SSE transport instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        if transport != "sse":
            raise ValueError(f"Unsupported transport: {transport}. Use mount_sse() or mount_http() instead.")
        return self.mount_sse(router, mount_path)

    # -- internals ---------------------------------------------------------------------

    def _placement(
        self,
        router: FastAPI | APIRouter | None,
        mount_path: str,
        allowed_hosts: Sequence[str] | None,
        allowed_origins: Sequence[str] | None,
    ) -> tuple[FastAPI | None, str, dict[str, Sequence[str] | None]]:
        """Where the endpoint goes and the Host/Origin lists it answers to; binds the OAuth
        resource to its URL.

        An `APIRouter` is, as in FastAPI-MCP, taken to be included in the source app at its
        prefix: the endpoint goes on the app at `prefix + mount_path`, so the route keeps its
        wrappers and the app's lifespan runs its session manager (re-including the router, as
        FastAPI-MCP does, would copy the routes and lose both).
        """
        path = "/" + mount_path.strip("/") if mount_path.strip("/") else ""
        host: FastAPI | None
        if router is None:
            host = None
        elif isinstance(router, FastAPI):
            host = None if router is self.fastapi else router
        elif isinstance(router, APIRouter):
            host, path = None, router.prefix.rstrip("/") + path
        else:
            raise TypeError(f"Invalid router type: {type(router)}")
        if not path:
            raise ValueError("mount_path must not be empty: the MCP endpoint needs its own path")
        if self._auth is not None:
            resource = (self._auth_config.resource if self._auth_config else None) or self._require_public_url() + path
            self._auth.bind(resource)
        elif self.public_url is not None:
            # With OAuth the bridge adds the shim's public host itself; without, add ours here.
            hosts, origins = default_allowed(self.public_url)
            allowed_hosts = hosts if allowed_hosts is None else allowed_hosts
            allowed_origins = origins if allowed_origins is None else allowed_origins
        return host, path, {"allowed_hosts": allowed_hosts, "allowed_origins": allowed_origins}

    def _require_public_url(self) -> str:
        if self.public_url is None:
            from mcp_oauth_shim import ConfigurationError

            raise ConfigurationError(
                "OAuth needs the URL clients reach this server at: FastApiMCP(app, ..., "
                f"public_url='https://api.example.com') or the {ENV_PUBLIC_URL} environment variable "
                "(http://127.0.0.1:8000 for local development). FastAPI-MCP took it from each "
                "request's Host header, which any client can set."
            )
        return self.public_url

    def _deferred_shim(self, config: AuthConfig) -> DeferredShim | None:
        metadata = config.custom_oauth_metadata
        if metadata is None and not config.setup_proxies:
            return None  # `dependencies` alone: no OAuth is served here
        self._require_public_url()
        document = metadata.document() if isinstance(metadata, OAuthMetadata) else None
        verify = document is None or bool(document.get("jwks_uri"))
        if not verify and not config.dependencies:
            logger.warning(
                "custom_oauth_metadata has no jwks_uri and AuthConfig has no dependencies: the MCP "
                "endpoint accepts requests without a token; your routes must check the forwarded one."
            )
        return DeferredShim(
            lambda resource: build_shim(config, self._require_public_url(), resource),
            metadata_path=config.metadata_path,
            verify=verify,
        )


def _api_client(client: httpx.AsyncClient | None) -> httpx.AsyncClient | None:
    """FastAPI-MCP's `http_client`, honoured when it names where the API is (`base_url`).

    Without a base_url it cannot send relative request URLs (FastAPI-MCP's calls failed with
    it); calls go to the app in-process, which needs no client and no timeout.
    """
    if client is not None and not str(client.base_url):
        logger.info("http_client has no base_url: tools call the app in-process instead")
        return None
    return client

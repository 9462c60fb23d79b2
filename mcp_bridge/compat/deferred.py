"""The `OAuthShim` of a FastAPI-MCP configuration, built when the first endpoint is mounted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from mcp_bridge.compat.config import DEFAULT_METADATA_PATH, AuthConfig, OAuthMetadata, secret_keys_of

if TYPE_CHECKING:
    from mcp_oauth_shim import OAuthShim

__all__ = ["DeferredShim", "build_shim"]


class DeferredShim:
    """The `auth` a compat bridge is given: an `OAuthShim` built when the first endpoint is
    mounted, because its resource (RFC 8707 / RFC 9728) is that endpoint's URL.

    Also serves the metadata at `AuthConfig.metadata_path`, and, for custom metadata without
    a `jwks_uri`, leaves the endpoint to the user's dependencies (FastAPI-MCP's behaviour:
    nothing here could check the tokens).
    """

    def __init__(self, build: Callable[[str], OAuthShim], *, metadata_path: str, verify: bool) -> None:
        self._build = build
        self._metadata_path = metadata_path
        self.verify = verify
        self.built: OAuthShim | None = None  # the shim, or None before the first mount

    def bind(self, resource: str) -> None:
        """Build the shim for `resource`; a later mount must lie under the same resource."""
        if self.built is None:
            self.built = self._build(resource)
            return
        bound = self.built.resource.rstrip("/")
        if not (resource == bound or resource.startswith(bound + "/")):
            from mcp_oauth_shim import ConfigurationError

            raise ConfigurationError(
                f"This FastApiMCP's OAuth resource is {bound}; {resource} is outside it. Tokens are bound "
                "to one resource: set AuthConfig(resource=...) to a URL both endpoints lie under."
            )

    @property
    def shim(self) -> OAuthShim:
        if self.built is None:
            raise RuntimeError("the OAuth shim exists once mount_http()/mount_sse() has run")
        return self.built

    @cached_property
    def routes(self) -> list[BaseRoute]:
        routes = list(self.shim.routes)
        served = {getattr(route, "path", None) for route in routes}
        if self._metadata_path not in served:
            source = next((r for r in routes if getattr(r, "path", "").startswith(DEFAULT_METADATA_PATH)), None)
            if isinstance(source, Route):
                routes.append(
                    Route(self._metadata_path, source.endpoint, methods=["GET", "OPTIONS"], include_in_schema=False)
                )
        return routes

    def protect(self, app: ASGIApp, *, scopes: Sequence[str] = ()) -> ASGIApp:
        """The shim's bearer check around `app`, unless nothing here can verify tokens."""
        return self.shim.protect(app, scopes=scopes) if self.verify else app

    def __getattr__(self, name: str) -> Any:
        # What else the bridge reads of its `auth` (`bridge.BridgeAuth`: resource_metadata_url,
        # issuer, public_url, lifespan) and anything more (verifier, ...): the built shim's own.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.shim, name)


def build_shim(config: AuthConfig, public_url: str, resource: str) -> OAuthShim:
    """The shim of `config` for `resource`: serving `custom_oauth_metadata` (verifying with its
    `jwks_uri` when it has one), else (`setup_proxies=True`) in front of the IdP, Auth0-style
    when `audience` is set."""
    from mcp_oauth_shim import OAuthShim, Upstream

    if isinstance(config.custom_oauth_metadata, OAuthMetadata):
        document = config.custom_oauth_metadata.document()
        # Built directly (not Upstream.oidc): no client is needed to check signatures, and the
        # audience FastAPI-MCP users configured is what their server puts into `aud`.
        custom = Upstream(
            client_id=config.client_id or "",
            client_secret=config.client_secret or "",
            issuer=document["issuer"],
            authorization_endpoint=document.get("authorization_endpoint"),
            token_endpoint=document["token_endpoint"],
            jwks_uri=document.get("jwks_uri"),
            audience=config.audience,
            default_scopes=tuple(document.get("scopes_supported") or ()),
            name="custom",
        )
        return OAuthShim(
            public_url=public_url,
            resource=resource,
            upstream=custom,
            custom_metadata=document,
            scopes_supported=config.scopes_supported,
        )
    scopes = tuple(config.default_scope.split())
    metadata_url = config.oauth_metadata_url
    if metadata_url is None and config.issuer is not None:
        # FastAPI-MCP's guess, kept so that a configuration that worked still does.
        metadata_url = config.issuer.rstrip("/") + config.metadata_path
    audience_param = config.audience_param or ("audience" if config.audience else "resource")
    assert config.client_id is not None and config.client_secret is not None  # AuthConfig validated
    upstream = Upstream.oidc(
        client_id=config.client_id,
        client_secret=config.client_secret,
        issuer=config.issuer,
        metadata_url=metadata_url,
        authorization_endpoint=config.authorize_url,
        audience=config.audience,
        audience_param=audience_param,
        # FastAPI-MCP asked for default_scope when the client named none and always added it.
        default_scopes=scopes,
        extra_scopes=scopes,
        token_auth_method=config.token_auth_method,
        name="fastapi-mcp-compat",
    )
    return OAuthShim(
        public_url=public_url,
        resource=resource,
        upstream=upstream,
        secret_keys=secret_keys_of(config),
        scopes_supported=config.scopes_supported,
        registration="signed" if config.setup_fake_dynamic_registration else "static",
        allowed_redirect_uris=config.allowed_redirect_uris,
    )

"""FastAPI-MCP 0.4's public surface on the bridge and the shim: migrate by changing one import.

    from mcp_bridge.compat import FastApiMCP, AuthConfig      # was: from fastapi_mcp import ...

`FastApiMCP` takes FastAPI-MCP 0.4's constructor arguments and methods (`mount_http`,
`mount_sse`, `mount`, `setup_server`) and runs them on `MCPBridge`; `AuthConfig` takes its
fields and validators and maps them to `OAuthShim`:

* `setup_proxies=True` -> an `OAuthShim` in front of the IdP (`issuer`, `oauth_metadata_url`,
  `authorize_url`, `client_id`, `client_secret`, `audience` sent as Auth0's `audience=`,
  `default_scope` requested and always added);
* `setup_fake_dynamic_registration` -> the shim's signed registration (True) or the static
  upstream client_id with an operator allow-list of redirect URIs (False); never the secret;
* `custom_oauth_metadata` -> `OAuthShim(custom_metadata=...)`, verifying tokens when the
  document names a `jwks_uri`;
* `dependencies` -> FastAPI dependencies on the MCP endpoint, refusals with a Bearer challenge;
* `metadata_path` -> one more place the authorization server metadata is served.

What FastAPI-MCP took from each request's `Host` header (every OAuth URL it advertised) comes
from a configured public URL here: `FastApiMCP(..., public_url=...)` or the
`MCP_OAUTH_SHIM_PUBLIC_URL` variable, the same one `mcp-oauth-shim serve` reads. Every
difference is listed in docs/migrating-from-fastapi-mcp.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from mcp_bridge.bridge import MCPBridge

if TYPE_CHECKING:
    import httpx

    from mcp_bridge.sse import SSEEndpoint
    from mcp_bridge.transport import MCPEndpoint
    from mcp_oauth_shim import OAuthShim

__all__ = ["ENV_PUBLIC_URL", "ENV_SECRET_KEYS", "AuthConfig", "FastApiMCP", "OAuthMetadata"]

logger = logging.getLogger("mcp_bridge.compat")

# The variables `mcp-oauth-shim serve` reads, so one deployment configures both the same way.
ENV_PUBLIC_URL = "MCP_OAUTH_SHIM_PUBLIC_URL"
ENV_SECRET_KEYS = "MCP_OAUTH_SHIM_SECRET_KEYS"

DEFAULT_METADATA_PATH = "/.well-known/oauth-authorization-server"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class OAuthMetadata(BaseModel):
    """RFC 8414 §2 authorization server metadata, for `AuthConfig(custom_oauth_metadata=...)`.

    FastAPI-MCP's field names and defaults; unknown members (`jwks_uri`, `revocation_endpoint`,
    ...) are kept, because the document is served as given and `jwks_uri` is what lets the
    endpoint verify tokens.
    """

    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str | None = None
    token_endpoint: str
    scopes_supported: list[str] = ["openid", "profile", "email"]
    response_types_supported: list[str] = ["code"]
    grant_types_supported: list[str] = ["authorization_code", "client_credentials"]
    token_endpoint_auth_methods_supported: list[str] = ["none"]
    code_challenge_methods_supported: list[str] = ["S256"]
    registration_endpoint: str | None = None

    @field_validator(
        "scopes_supported",
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "code_challenge_methods_supported",
    )
    @classmethod
    def _not_empty(cls, value: list[str], info: Any) -> list[str]:
        # RFC 8414 §2: an advertised list with no member says nothing and breaks clients.
        if not value:
            raise ValueError(f"{info.field_name} cannot be empty")
        return value

    @model_validator(mode="after")
    def _authorization_endpoint_for_code_grant(self) -> OAuthMetadata:
        # RFC 8414 §2: required unless no grant type uses the authorization endpoint.
        if "authorization_code" in self.grant_types_supported and not self.authorization_endpoint:
            raise ValueError("authorization_endpoint is required when authorization_code grant type is supported")
        return self

    def document(self) -> dict[str, Any]:
        """The members the user set (FastAPI-MCP served exactly these, defaults left out)."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class AuthConfig(BaseModel):
    """FastAPI-MCP 0.4's `AuthConfig`, same fields, same validators, plus a few of ours.

    Ours (all optional): `secret_keys` (default: `MCP_OAUTH_SHIM_SECRET_KEYS`, else one key
    generated per process, with a warning), `resource` (default: public URL + mount path),
    `scopes_supported`, `audience_param`, `token_auth_method`, `allowed_redirect_uris`.
    Unknown fields are refused: a misspelled security setting must not be silently dropped.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    version: Literal["2025-03-26"] = "2025-03-26"
    dependencies: Sequence[Depends] | None = None
    issuer: str | None = None
    oauth_metadata_url: str | None = None
    authorize_url: str | None = None
    audience: str | None = None
    default_scope: str = "openid profile email"
    client_id: str | None = None
    client_secret: str | None = None
    custom_oauth_metadata: OAuthMetadata | dict[str, Any] | None = None
    setup_proxies: bool = False
    setup_fake_dynamic_registration: bool = True
    metadata_path: str = DEFAULT_METADATA_PATH

    secret_keys: list[str] | None = None
    resource: str | None = None
    scopes_supported: list[str] | None = None
    audience_param: Literal["resource", "audience", "none"] | None = None
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"
    allowed_redirect_uris: list[str] = []

    @field_validator("custom_oauth_metadata")
    @classmethod
    def _metadata_model(cls, value: OAuthMetadata | dict[str, Any] | None) -> OAuthMetadata | None:
        return None if value is None else OAuthMetadata.model_validate(value)

    @field_validator("metadata_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("metadata_path must be an absolute path such as /.well-known/oauth-authorization-server")
        return value

    @model_validator(mode="after")
    def _required_fields(self) -> AuthConfig:
        # FastAPI-MCP's rules, same messages.
        if self.custom_oauth_metadata is None and self.issuer is None and not self.dependencies:
            raise ValueError("at least one of 'issuer', 'custom_oauth_metadata' or 'dependencies' is required")
        if self.setup_proxies:
            if self.client_id is None:
                raise ValueError("'client_id' is required when 'setup_proxies' is True")
            if self.setup_fake_dynamic_registration and not self.client_secret:
                raise ValueError("'client_secret' is required when 'setup_fake_dynamic_registration' is True")
        # Ours: the shim is the confidential client at the IdP (it exchanges codes with the
        # secret, which never leaves the server), and it must be able to find the IdP.
        if self.proxies_active:
            if not self.client_secret:
                raise ValueError(
                    "'client_secret' is required when 'setup_proxies' is True: the token endpoint "
                    "exchanges codes at your IdP with it (MCP clients never receive it)"
                )
            if self.issuer is None and self.oauth_metadata_url is None:
                raise ValueError("'issuer' or 'oauth_metadata_url' is required when 'setup_proxies' is True")
            if not self.setup_fake_dynamic_registration and not self.allowed_redirect_uris:
                # Without registration, clients present the IdP client_id with the redirect URIs
                # that used to be registered at the IdP; nothing else may receive codes.
                raise ValueError(
                    "'allowed_redirect_uris' is required when 'setup_fake_dynamic_registration' is False: "
                    "list the redirect URIs your clients use (e.g. http://127.0.0.1:8080/oauth/callback)"
                )
        return self

    @property
    def proxies_active(self) -> bool:
        """FastAPI-MCP ignores `setup_proxies` when custom metadata is given; so do we."""
        return self.setup_proxies and self.custom_oauth_metadata is None

    @property
    def needs_shim(self) -> bool:
        return self.proxies_active or self.custom_oauth_metadata is not None


class _DeferredShim:
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
        self._shim: OAuthShim | None = None

    def bind(self, resource: str) -> None:
        """Build the shim for `resource`; a later mount must lie under the same resource."""
        if self._shim is None:
            self._shim = self._build(resource)
            return
        bound = self._shim.resource.rstrip("/")
        if not (resource == bound or resource.startswith(bound + "/")):
            from mcp_oauth_shim import ConfigurationError

            raise ConfigurationError(
                f"This FastApiMCP's OAuth resource is {bound}; {resource} is outside it. Tokens are bound "
                "to one resource: set AuthConfig(resource=...) to a URL both endpoints lie under."
            )

    @property
    def shim(self) -> OAuthShim:
        if self._shim is None:
            raise RuntimeError("the OAuth shim exists once mount_http()/mount_sse() has run")
        return self._shim

    @cached_property
    def routes(self) -> list[BaseRoute]:
        routes = list(self.shim.routes)
        served = {getattr(route, "path", None) for route in routes}
        if self._metadata_path not in served:
            source = next(
                (r for r in routes if getattr(r, "path", "").startswith(DEFAULT_METADATA_PATH)), None
            )
            if isinstance(source, Route):
                routes.append(
                    Route(self._metadata_path, source.endpoint, methods=["GET", "OPTIONS"], include_in_schema=False)
                )
        return routes

    def protect(self, app: ASGIApp, *, scopes: Sequence[str] = ()) -> ASGIApp:
        return self.shim.protect(app, scopes=scopes) if self.verify else app

    def __getattr__(self, name: str) -> Any:
        # resource_metadata_url, issuer, public_url, lifespan, verifier, ...: the shim's own.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.shim, name)


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
        self.public_url = _public_url(public_url or os.environ.get(ENV_PUBLIC_URL, ""))
        self._auth = self._deferred_shim(self._auth_config) if self._auth_config is not None else None
        self.bridge = MCPBridge(
            fastapi,
            auth=self._auth,  # type: ignore[arg-type]  # duck-typed: built at the first mount
            name=self.name,
            description=self.description,
            include_operations=include_operations,
            exclude_operations=exclude_operations,
            include_tags=include_tags,
            exclude_tags=exclude_tags,
            describe_all_responses=describe_all_responses,
            describe_full_response_schema=describe_full_response_schema,
            forward_headers=tuple(headers),
            dependencies=_with_token_check_first(self._auth, self._auth_config),
            http_client=_api_client(http_client),
        )

    # -- FastAPI-MCP's read-only attributes --------------------------------------------

    @property
    def tools(self) -> list[Any]:
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
    def server(self) -> Any:
        """The mcp SDK 2.x low-level `Server` behind the endpoints."""
        return self.bridge.server

    @property
    def shim(self) -> OAuthShim | None:
        """The `OAuthShim` serving OAuth (None without OAuth or before the first mount)."""
        return self._auth._shim if self._auth is not None else None

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
    ) -> MCPEndpoint:
        """Serve Streamable HTTP at `mount_path` on `router` (default: the app).

        Keyword-only extras (ours): `stateless=True` for several workers or replicas without
        sticky sessions; `json_response`; `allowed_hosts` / `allowed_origins` for the Host and
        Origin checks (default: loopback plus the public URL's host).
        """
        host, path = self._placement(router, mount_path)
        hosts, origins = self._host_policy(allowed_hosts, allowed_origins)
        return self.bridge.mount_http(
            path,
            router=host,
            stateless=stateless,
            json_response=json_response,
            allowed_hosts=hosts,
            allowed_origins=origins,
        )

    def mount_sse(
        self,
        router: FastAPI | APIRouter | None = None,
        mount_path: str = "/sse",
        *,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
    ) -> SSEEndpoint:
        """Serve the legacy HTTP+SSE transport: `GET mount_path`, `POST mount_path/messages/`."""
        host, path = self._placement(router, mount_path)
        hosts, origins = self._host_policy(allowed_hosts, allowed_origins)
        return self.bridge.mount_sse(path, router=host, allowed_hosts=hosts, allowed_origins=origins)

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

    def _placement(self, router: FastAPI | APIRouter | None, mount_path: str) -> tuple[FastAPI | None, str]:
        """Where the endpoint goes, and bind the OAuth resource to its URL.

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
        return host, path

    def _host_policy(
        self, allowed_hosts: Sequence[str] | None, allowed_origins: Sequence[str] | None
    ) -> tuple[Sequence[str] | None, Sequence[str] | None]:
        # With OAuth the bridge adds the shim's public host itself; without, add ours here.
        if self._auth is not None or self.public_url is None:
            return allowed_hosts, allowed_origins
        public = urlsplit(self.public_url)
        if allowed_hosts is None:
            allowed_hosts = [*(h for base in _LOOPBACK for h in (base, base + ":*")), public.netloc]
        if allowed_origins is None:
            allowed_origins = [
                *(f"{s}://{h}{p}" for h in _LOOPBACK for s in ("http", "https") for p in ("", ":*")),
                f"{public.scheme}://{public.netloc}",
            ]
        return allowed_hosts, allowed_origins

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

    def _deferred_shim(self, config: AuthConfig) -> _DeferredShim | None:
        if not config.needs_shim:
            return None
        self._require_public_url()
        metadata = config.custom_oauth_metadata
        if isinstance(metadata, OAuthMetadata):
            document = metadata.document()
            verify = bool(document.get("jwks_uri"))
            if not verify and not config.dependencies:
                logger.warning(
                    "custom_oauth_metadata has no jwks_uri and AuthConfig has no dependencies: the MCP "
                    "endpoint accepts requests without a token; your routes must check the forwarded one."
                )
            return _DeferredShim(
                lambda resource: _custom_metadata_shim(config, document, self._require_public_url(), resource),
                metadata_path=config.metadata_path,
                verify=verify,
            )
        return _DeferredShim(
            lambda resource: _proxy_shim(config, self._require_public_url(), resource),
            metadata_path=config.metadata_path,
            verify=True,
        )


def _with_token_check_first(auth: _DeferredShim | None, config: AuthConfig | None) -> tuple[Depends, ...]:
    """The user's dependencies, after the shim's own token check when the shim verifies tokens.

    The endpoint's dependencies run before the bridge checks the token, so a bad token was
    refused by the user's dependency, with whatever challenge it sends (often a bare
    ``Bearer``). Checked first by the shim, it gets RFC 6750 §3's: ``error="invalid_token"``,
    ``scope`` and ``resource_metadata``; the user's dependencies then see only good tokens.
    """
    if config is None or not config.dependencies:
        return ()
    if auth is None or not auth.verify:
        return tuple(config.dependencies)
    return (Depends(_shim_token_check(auth)), *config.dependencies)


def _shim_token_check(auth: _DeferredShim) -> Callable[..., Any]:
    from mcp_oauth_shim.rfc6750 import bearer_challenge
    from mcp_oauth_shim.upstream import UpstreamError
    from mcp_oauth_shim.verify import InsufficientScope, InvalidToken

    def refuse(status: int, error: str | None, description: str, scopes: Sequence[str]) -> HTTPException:
        challenge = bearer_challenge(
            resource_metadata=auth.shim.resource_metadata_url, scope=scopes, error=error, error_description=description
        )
        return HTTPException(status_code=status, detail=description, headers={"WWW-Authenticate": challenge})

    async def shim_checks_the_token(request: Request) -> None:
        verifier = auth.shim.verifier  # the shim exists once the endpoint is mounted
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise refuse(401, None, "An OAuth access token is required.", verifier.challenge_scopes)
        try:
            await verifier.authenticate(token.strip())
        except InvalidToken as exc:
            raise refuse(401, "invalid_token", exc.description, verifier.challenge_scopes) from None
        except InsufficientScope as exc:
            raise refuse(403, "insufficient_scope", exc.description, exc.required) from None
        except UpstreamError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.description) from None

    return shim_checks_the_token


def _proxy_shim(config: AuthConfig, public_url: str, resource: str) -> OAuthShim:
    """`setup_proxies=True`: the shim in front of the IdP, Auth0-style when `audience` is set."""
    from mcp_oauth_shim import OAuthShim, Upstream

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
        secret_keys=_secret_keys(config),
        scopes_supported=config.scopes_supported,
        registration="signed" if config.setup_fake_dynamic_registration else "static",
        allowed_redirect_uris=config.allowed_redirect_uris,
    )


def _custom_metadata_shim(config: AuthConfig, document: dict[str, Any], public_url: str, resource: str) -> OAuthShim:
    """`custom_oauth_metadata`: serve the document; verify with its `jwks_uri` when it has one."""
    from mcp_oauth_shim import OAuthShim, Upstream

    # Built directly (not Upstream.oidc): no client is needed to check signatures, and the
    # audience FastAPI-MCP users configured is what their server puts into `aud`.
    upstream = Upstream(
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
        upstream=upstream,
        custom_metadata=document,
        scopes_supported=config.scopes_supported,
    )


def _public_url(value: str) -> str | None:
    """The configured public URL without trailing slash; the shim checks the rest (https, ...)."""
    url = value.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        from mcp_oauth_shim import ConfigurationError

        raise ConfigurationError(
            f"public_url ({ENV_PUBLIC_URL}) must be an absolute http(s) URL such as "
            f"https://api.example.com, got {value!r}."
        )
    return url


def _secret_keys(config: AuthConfig) -> list[str]:
    """`AuthConfig.secret_keys`, else the variable (comma-separated, newest first), else one
    random key for this process - which only a single process that never restarts can use."""
    if config.secret_keys:
        return list(config.secret_keys)
    from_env = [k.strip() for k in os.environ.get(ENV_SECRET_KEYS, "").split(",") if k.strip()]
    if from_env:
        return from_env
    logger.warning(
        "No signing key configured (AuthConfig(secret_keys=[...]) or %s): using a random key for this "
        "process only. Registrations, logins in progress and refresh tokens stop working at every restart, "
        "and other workers or replicas refuse them. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and set %s.",
        ENV_SECRET_KEYS,
        ENV_SECRET_KEYS,
    )
    return [secrets.token_urlsafe(48)]


def _api_client(client: httpx.AsyncClient | None) -> httpx.AsyncClient | None:
    """FastAPI-MCP's `http_client`, honoured when it names where the API is (`base_url`).

    Without a base_url it cannot send relative request URLs (FastAPI-MCP's calls failed with
    it); calls go to the app in-process, which needs no client and no timeout.
    """
    if client is None:
        return None
    if not str(client.base_url):
        logger.info("http_client has no base_url: tools call the app in-process instead")
        return None
    return client

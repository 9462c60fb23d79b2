"""The server under test: the shim in front of the mcp SDK's MCPServer (TEAM.md's wiring).

`whoami` reports the caller as the SDK sees it (the access token the shim verified), `echo`
returns its input. With issued tokens, `idp_userinfo` calls the IdP's userinfo endpoint with
the IdP's access token the shim's token carries (encrypted): what a tool calling Google's or
GitHub's API for the user does. The shim and the SDK are imported when a server is built, not
at import.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

from .idp import IdP, IdPProfile
from .servers import RequestLog, RunningServer


@dataclass(frozen=True)
class IdPApi:
    """The IdP's API a tool calls for the user in issued-token mode: its userinfo endpoint
    (OpenID Connect Core §5.3), standing in for Google's or GitHub's APIs."""

    userinfo_url: str

    async def userinfo(self, access_token: Any) -> dict[str, Any]:
        """Userinfo for the user of `access_token`, the verified token the shim's verifier gave
        the tool (an `IssuedAccessToken`), called with the IdP's own access token it carries."""
        upstream = access_token.upstream_access_token()
        if upstream is None:
            raise ValueError("the shim's access token carries no IdP access token")
        async with httpx.AsyncClient(timeout=15.0) as http:
            response = await http.get(self.userinfo_url, headers={"Authorization": f"Bearer {upstream}"})
        if response.status_code != 200:
            raise ValueError(f"the IdP's userinfo answered {response.status_code}")
        return dict(response.json())


def userinfo_endpoint(idp: IdP) -> str:
    response = httpx.get(idp.discovery_url, timeout=15.0)
    response.raise_for_status()
    return str(response.json()["userinfo_endpoint"])


def build_mcp_server(idp_api: IdPApi | None = None) -> Any:
    """An MCPServer with the `whoami` and `echo` tools, and `idp_userinfo` given `idp_api`."""
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("shim-under-test")

    @server.tool()
    def whoami() -> str:
        """Who the access token says the caller is."""
        token = get_access_token()
        if token is None:
            raise ValueError("the request reached the tool without an authenticated user")
        claims = token.claims or {}
        return json.dumps(
            {
                "subject": token.subject,
                "client_id": token.client_id,
                "scopes": token.scopes,
                "iss": claims.get("iss"),
                "aud": claims.get("aud"),
                # Issued tokens carry the user's e-mail as the IdP gave it (IssuedAccessToken).
                "email": getattr(token, "email", None),
            }
        )

    @server.tool()
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    if idp_api is not None:

        @server.tool()
        async def idp_userinfo() -> str:
            """The IdP's userinfo for the caller, fetched with the IdP's own access token."""
            token = get_access_token()
            if token is None:
                raise ValueError("the request reached the tool without an authenticated user")
            return json.dumps(await idp_api.userinfo(token))

    return server


@dataclass(frozen=True)
class ShimServer:
    """The shim + MCPServer app, served on loopback, and the IdP behind it."""

    public_url: str
    mcp_url: str
    idp: IdP
    requests: RequestLog
    # Who signs the access tokens the tools see: the IdP (passed through) or the shim (issued).
    token_issuer: str = ""
    issue_tokens: bool = False

    @property
    def tool_names(self) -> set[str]:
        return {"whoami", "echo", "idp_userinfo"} if self.issue_tokens else {"whoami", "echo"}


@dataclass(frozen=True)
class ShimSettings:
    """How the shim is configured towards the IdP."""

    audience_param: str = "resource"  # "audience" (Auth0) or "resource" (RFC 8707)
    default_scopes: tuple[str, ...] = ("openid", "profile", "email")
    extra_scopes: tuple[str, ...] = ("offline_access",)
    # Issued-token mode: the shim signs its own access tokens; `identity` says where it learns
    # the user (the IdP's ID token or its userinfo endpoint).
    issue_tokens: bool = False
    identity: str = "id_token"
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    # What the IdP's access tokens look like (an AccessTokenProfile; None: Upstream's default).
    access_tokens: Any = None
    # The audience the shim expects in the IdP's tokens when it does not ask for one
    # (audience_param "none"): "resource", the MCP URL (Keycloak's audience mapper),
    # "client_id", the upstream client's (Entra ID), or any other value as it is (Okta's
    # "api://default").
    expected_audience: str | None = None
    # Put in front of the API scopes sent to the IdP (Entra ID: "api://<client id>/").
    scope_prefix: str = ""

    @classmethod
    def for_profile(cls, profile: IdPProfile, identity: str = "id_token") -> ShimSettings:
        if not profile.issue_tokens:
            return cls(audience_param=profile.audience_param)
        # What `Upstream.google` sends: no offline_access (Google refuses it), a refresh token
        # from access_type=offline with prompt=consent.
        return cls(
            audience_param=profile.audience_param,
            extra_scopes=(),
            issue_tokens=True,
            identity=identity,
            extra_authorize_params=(("access_type", "offline"), ("prompt", "consent")),
        )


def build_upstream(idp: IdP, mcp_url: str, settings: ShimSettings) -> Any:
    """`Upstream.oidc` towards the test IdP, as `settings` say."""
    from mcp_oauth_shim import Upstream

    audience = None if settings.audience_param == "none" else mcp_url
    if settings.expected_audience is not None:
        audience = expected_audience(settings.expected_audience, idp, mcp_url)
    options: dict[str, Any] = {}
    if settings.access_tokens is not None:
        options["access_tokens"] = settings.access_tokens
    if settings.issue_tokens:
        options |= {
            "issue_tokens": True,
            "identity": settings.identity,
            "extra_authorize_params": dict(settings.extra_authorize_params),
        }
    return Upstream.oidc(
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        audience=audience,
        audience_param=settings.audience_param,  # type: ignore[arg-type]
        default_scopes=settings.default_scopes,
        scope_prefix=settings.scope_prefix,
        extra_scopes=settings.extra_scopes,
        token_auth_method=idp.token_endpoint_auth_method,  # type: ignore[arg-type]
        **options,
    )


def expected_audience(name: str, idp: IdP, mcp_url: str) -> str:
    """`ShimSettings.expected_audience` for this IdP and MCP endpoint."""
    return {"resource": mcp_url, "client_id": idp.client_id}.get(name, name)


@dataclass(frozen=True)
class ShimApp:
    """The ASGI app under test and what the tests need to know about its shim."""

    app: ASGIApp
    token_issuer: str
    issue_tokens: bool


def build_shim_app(public_url: str, idp: IdP, settings: ShimSettings = ShimSettings()) -> ASGIApp:
    """The shim's routes plus the protected MCPServer at `public_url + "/mcp"`, one Starlette app."""
    return build_shim(public_url, idp, settings).app


def build_shim(public_url: str, idp: IdP, settings: ShimSettings = ShimSettings()) -> ShimApp:
    """`build_shim_app`, with what the tests need to know about the shim in it."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from mcp_oauth_shim import OAuthShim

    mcp_url = public_url + "/mcp"
    upstream = build_upstream(idp, mcp_url, settings)
    shim = OAuthShim(public_url=public_url, resource=mcp_url, upstream=upstream, secret_keys=[secrets.token_urlsafe(48)])
    mcp = build_mcp_server(IdPApi(userinfo_endpoint(idp)) if settings.issue_tokens else None)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        # DNS rebinding protection stays on: only this server's own Host and Origin pass.
        transport_security=TransportSecuritySettings(allowed_hosts=[public_url.split("://", 1)[1]], allowed_origins=[public_url]),
    )
    app = Starlette(
        routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))],
        # A Mount does not run the mounted app's lifespan; the session manager needs one.
        lifespan=lambda _app: mcp.session_manager.run(),
    )
    return ShimApp(
        app=app,
        token_issuer=shim.issuer if settings.issue_tokens else idp.issuer,
        issue_tokens=settings.issue_tokens,
    )


def serve_shim(public_url: str, idp: IdP, settings: ShimSettings, serve_app: Callable[[ASGIApp], RunningServer]) -> ShimServer:
    """`build_shim`, served with `serve_app` (the fixture of that name), as a ShimServer."""
    built = build_shim(public_url, idp, settings)
    running = serve_app(built.app)
    return ShimServer(
        public_url=running.url,
        mcp_url=running.url + "/mcp",
        idp=idp,
        requests=running.requests,
        token_issuer=built.token_issuer,
        issue_tokens=built.issue_tokens,
    )

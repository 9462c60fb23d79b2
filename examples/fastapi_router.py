"""The shim inside a FastAPI app: ``app.include_router(shim.router)`` plus a route that needs a token.

    pip install -e ".[fastapi]"
    export MCP_OAUTH_SHIM_UPSTREAM_ISSUER=https://your-tenant.eu.auth0.com/  # exactly as the IdP spells it
    export MCP_OAUTH_SHIM_CLIENT_ID=...                 # a confidential client at the IdP
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    python examples/fastapi_router.py

Register ``http://127.0.0.1:8000/oauth/callback`` at the IdP. ``GET /api/me`` then answers 401
with a ``WWW-Authenticate`` challenge that tells an OAuth client where to log in, and the
caller's identity once it sends ``Authorization: Bearer <access token>``. Optional variables
(named as for ``mcp-oauth-shim serve``): MCP_OAUTH_SHIM_AUDIENCE (default: the public URL +
"/mcp"), MCP_OAUTH_SHIM_AUDIENCE_PARAM (resource | audience | none), MCP_OAUTH_SHIM_PUBLIC_URL
(default http://127.0.0.1:8000), MCP_OAUTH_SHIM_PORT. Listens on 127.0.0.1 only.

To serve FastAPI routes as MCP tools behind this login, see docs/bridge.md.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from mcp.server.auth.provider import AccessToken

from mcp_oauth_shim import ConfigurationError, OAuthShim, Upstream, UpstreamError
from mcp_oauth_shim.logs import uvicorn_log_config
from mcp_oauth_shim.rfc6750 import bearer_challenge
from mcp_oauth_shim.verify import InsufficientScope, InvalidToken

# The variables of `mcp-oauth-shim serve`, so one environment configures either.
REQUIRED = (
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER",
    "MCP_OAUTH_SHIM_CLIENT_ID",
    "MCP_OAUTH_SHIM_CLIENT_SECRET",
    "MCP_OAUTH_SHIM_SECRET_KEYS",
)


def shim_from_env(env: Mapping[str, str]) -> OAuthShim:
    """The shim, configured from the environment; exits with a readable message when it cannot."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise SystemExit(
            f"fastapi_router.py: set {', '.join(missing)} (see the top of examples/fastapi_router.py). "
            "A key: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    public_url = env.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        upstream = Upstream.oidc(
            issuer=env["MCP_OAUTH_SHIM_UPSTREAM_ISSUER"],
            client_id=env["MCP_OAUTH_SHIM_CLIENT_ID"],
            client_secret=env["MCP_OAUTH_SHIM_CLIENT_SECRET"],
            audience=env.get("MCP_OAUTH_SHIM_AUDIENCE") or public_url + "/mcp",
            audience_param=env.get("MCP_OAUTH_SHIM_AUDIENCE_PARAM", "resource"),  # type: ignore[arg-type]
        )
        keys = [key.strip() for key in env["MCP_OAUTH_SHIM_SECRET_KEYS"].split(",") if key.strip()]  # newest first
        return OAuthShim(public_url=public_url, upstream=upstream, secret_keys=keys)
    except ConfigurationError as exc:
        raise SystemExit(f"fastapi_router.py: {exc}") from None


def bearer(shim: OAuthShim, *scopes: str) -> Callable[..., Awaitable[AccessToken]]:
    """A FastAPI dependency: the caller's verified access token, else an RFC 6750 refusal.

    ``shim.protect(app)`` does the same for a whole ASGI app; this is the per-route form.
    """

    def refuse(status: int, error: str | None, description: str, scope: tuple[str, ...]) -> HTTPException:
        challenge = bearer_challenge(
            resource_metadata=shim.resource_metadata_url,  # RFC 9728 §5.1: where to start logging in
            scope=scope,
            error=error,  # none at all when no token was sent (RFC 6750 §3.1)
            error_description=description if error else None,
        )
        return HTTPException(status, {"error": error or "invalid_token", "error_description": description},
                             headers={"WWW-Authenticate": challenge})

    async def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(HTTPBearer(auto_error=False)),
    ) -> AccessToken:
        wanted = tuple(dict.fromkeys((*shim.verifier.challenge_scopes, *scopes)))
        if credentials is None:
            raise refuse(401, None, "This API needs an OAuth access token.", wanted)
        try:
            return await shim.verifier.authenticate(credentials.credentials, scopes=scopes)
        except InvalidToken as exc:  # bad signature, wrong iss/aud, expired, ...
            raise refuse(401, "invalid_token", exc.description, wanted) from None
        except InsufficientScope as exc:
            raise refuse(403, "insufficient_scope", exc.description, exc.required) from None
        except UpstreamError as exc:  # the IdP's keys could not be fetched: not the caller's fault
            raise HTTPException(exc.status_code, {"error": exc.error, "error_description": exc.description}) from None

    return dependency


def build_app(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="fastapi_router example")
    # Metadata and /oauth/*; the router's lifespan closes the shim's IdP connections on shutdown.
    app.include_router(shim.router)

    # One dependency value for every protected route of this app (built once, not per route).
    current_token = Depends(bearer(shim))

    @app.get("/api/me")
    async def me(token: AccessToken = current_token) -> dict[str, Any]:
        return {"subject": token.subject, "scopes": token.scopes, "client_id": token.client_id}

    @app.get("/api/health")
    async def health() -> dict[str, str]:  # open to everyone
        return {"status": "ok"}

    return app


def main() -> None:
    shim = shim_from_env(os.environ)
    port = int(os.environ.get("MCP_OAUTH_SHIM_PORT") or urlsplit(shim.public_url).port or 8000)
    print(f"Protected route: {shim.public_url}/api/me")
    print(f"Register this callback URL at the IdP: {shim.public_url}/oauth/callback")
    uvicorn.run(build_app(shim), host="127.0.0.1", port=port, log_config=uvicorn_log_config())


if __name__ == "__main__":
    main()

"""A FastAPI-MCP 0.4 app (its Auth0 example, in its style) moved over by changing one import.

    # was: from fastapi_mcp import FastApiMCP, AuthConfig
    from mcp_bridge.compat import FastApiMCP, AuthConfig

Run it against your Auth0 tenant (or any OIDC provider), with the variables in a ``.env`` file
in the current directory, as FastAPI-MCP's example has them, or exported (those win):

    AUTH0_DOMAIN=your-tenant.eu.auth0.com
    AUTH0_AUDIENCE=https://items.example/api           # the API identifier at Auth0
    AUTH0_CLIENT_ID=...                                # a "Regular Web Application" client
    AUTH0_CLIENT_SECRET=...
    MCP_OAUTH_SHIM_PUBLIC_URL=http://127.0.0.1:8000
    MCP_OAUTH_SHIM_SECRET_KEYS=...                     # python -c "import secrets; print(secrets.token_urlsafe(48))"

    python examples/fastapi_mcp_migration.py

The ``AUTH0_*`` names are FastAPI-MCP's own, so an existing ``.env`` keeps working; the two
``MCP_OAUTH_SHIM_*`` ones are those of ``mcp-oauth-shim serve``. It listens on 127.0.0.1, on
``MCP_OAUTH_SHIM_PORT``, else the public URL's port, else 8000. ``.env`` is read with
python-dotenv (what FastAPI-MCP's pydantic-settings reads it with, so migrating users have it);
without it, export the variables.

What changes for you (docs/migrating-from-fastapi-mcp.md has every difference):
- register ONE callback URL at Auth0: MCP_OAUTH_SHIM_PUBLIC_URL + /oauth/callback
  (http://127.0.0.1:8000/oauth/callback here), not mcp-remote's fixed-port one;
- MCP clients connect to http://127.0.0.1:8000/mcp with no fixed port and no client secret:
  `npx mcp-remote http://127.0.0.1:8000/mcp`, Claude, VS Code, Cursor, the SDKs;
- the two variables above: where clients reach this server (FastAPI-MCP read it from the
  Host header) and the key that signs registrations and logins (stable across restarts).
"""

import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, status

from mcp_bridge.compat import AuthConfig, FastApiMCP


def build_app(
    *,
    issuer: str,
    authorize_url: str,
    oauth_metadata_url: str,
    jwks_url: str,
    audience: str,
    client_id: str,
    client_secret: str,
) -> FastAPI:
    jwks = jwt.PyJWKClient(jwks_url)

    def verify_auth(request: Request) -> dict[str, Any]:
        """The app's own token check (unchanged from FastAPI-MCP days): signature, aud, iss."""
        auth_header = request.headers.get("authorization", "")
        if not auth_header.startswith("Bearer "):
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Invalid authorization header")
        token = auth_header.split(" ", 1)[1]
        try:
            key = jwks.get_signing_key_from_jwt(token).key
            return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)
        except jwt.PyJWTError:
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Unauthorized") from None

    def current_user_id(claims: dict = Depends(verify_auth)) -> str:  # type: ignore[type-arg]
        user_id = claims.get("sub")
        if not user_id:
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Unauthorized")
        return user_id

    app = FastAPI(title="items")

    @app.get("/api/public", operation_id="public")
    async def public() -> dict[str, str]:
        return {"message": "This is a public route"}

    @app.get("/api/protected", operation_id="protected")
    async def protected(user_id: str = Depends(current_user_id)) -> dict[str, str]:
        return {"message": f"Hello, {user_id}!", "user_id": user_id}

    mcp = FastApiMCP(
        app,
        name="MCP With Auth0",
        description="FastAPI-MCP's Auth0 example on mcp_bridge.compat",
        auth_config=AuthConfig(
            issuer=issuer,
            authorize_url=authorize_url,
            oauth_metadata_url=oauth_metadata_url,
            audience=audience,
            client_id=client_id,
            client_secret=client_secret,
            dependencies=[Depends(verify_auth)],
            setup_proxies=True,
        ),
    )
    mcp.mount_http()
    return app


def read_dotenv(path: str = ".env") -> bool:
    """Load ``path`` into the environment if it exists; variables already set win. True if read.

    python-dotenv parses it (quotes, ``export``, comments as FastAPI-MCP users' files have them);
    it is optional: without it a present file is reported, not misread by a home-made parser.
    """
    if not os.path.isfile(path):
        return False
    try:
        from dotenv import load_dotenv
    except ImportError:
        print(f"{path} not read: `pip install python-dotenv`, or export its variables.", file=sys.stderr)
        return False
    return bool(load_dotenv(path, override=False))


def listen_port(env: Mapping[str, str]) -> int:
    """MCP_OAUTH_SHIM_PORT, else the public URL's port, else 8000: the URL clients are given."""
    public = urlsplit(env.get("MCP_OAUTH_SHIM_PUBLIC_URL", ""))
    return int(env.get("MCP_OAUTH_SHIM_PORT") or public.port or 8000)


def app_from_env() -> FastAPI:
    env = os.environ
    needed = ("AUTH0_DOMAIN", "AUTH0_AUDIENCE", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "MCP_OAUTH_SHIM_PUBLIC_URL")
    missing = [name for name in needed if not env.get(name)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} (see the top of examples/fastapi_mcp_migration.py).")
    domain = env["AUTH0_DOMAIN"]
    return build_app(
        issuer=f"https://{domain}/",  # Auth0's issuer ends with a slash; it must match exactly
        authorize_url=f"https://{domain}/authorize",
        oauth_metadata_url=f"https://{domain}/.well-known/openid-configuration",
        jwks_url=f"https://{domain}/.well-known/jwks.json",
        audience=env["AUTH0_AUDIENCE"],
        client_id=env["AUTH0_CLIENT_ID"],
        client_secret=env["AUTH0_CLIENT_SECRET"],
    )


if __name__ == "__main__":
    import uvicorn

    from mcp_oauth_shim.logs import uvicorn_log_config

    read_dotenv()
    # The access log is redacted: authorization codes and states travel in query strings.
    uvicorn.run(app_from_env(), host="127.0.0.1", port=listen_port(os.environ), log_config=uvicorn_log_config())

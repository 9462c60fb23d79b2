"""Tools that know who calls them and call GitHub's API as that user.

Users sign in with GitHub through the shim, which gives MCP clients its own access tokens
(issued-token mode: GitHub's tokens are opaque, so your server could not check them) and
carries the user's GitHub token inside them, encrypted. The routes below are ordinary FastAPI
routes, served as MCP tools by the bridge and as plain HTTP:

* `whoami` reads the verified caller (`verified_caller`): no call to GitHub at all;
* `github_profile` gets the user's GitHub token (`upstream_token`, decrypted for this request
  only) and calls `GET /user` of GitHub's REST API with it.

    export MCP_OAUTH_SHIM_CLIENT_ID=...        # a GitHub OAuth App (Settings > Developer settings)
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c "import secrets; print(secrets.token_urlsafe(48))")
    python examples/bridge_github_tools.py

Set the OAuth App's callback URL to http://127.0.0.1:8000/oauth/callback; MCP clients connect
to http://127.0.0.1:8000/mcp. See docs/identity-for-tools.md. Listens on 127.0.0.1 only.
"""

# No `from __future__ import annotations`: FastAPI must see the Security(...) objects built in build_app.

import os
import secrets
import sys
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Security

from mcp_bridge import MCPBridge, upstream_token, verified_caller
from mcp_oauth_shim import Caller, OAuthShim, Upstream

GITHUB_API = "https://api.github.com"


def build_app(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="GitHub tools")
    caller = verified_caller(shim)  # the verified user, client and scopes of the request
    github_token = upstream_token(shim)  # the user's GitHub token, decrypted on request
    api = shim.upstream.user_api or GITHUB_API  # GitHub Enterprise: https://HOST/api/v3

    @app.get("/me", operation_id="whoami")
    def whoami(user: Annotated[Caller, Security(caller)]) -> dict[str, Any]:
        """Who is calling: the GitHub user (numeric id, login, name, e-mail) and the MCP client."""
        return {
            "github_id": user.subject,
            "login": user.username,
            "name": user.name,
            "email": user.email,
            "client_id": user.client_id,
        }

    @app.get("/github/profile", operation_id="github_profile")
    async def github_profile(token: Annotated[str, Security(github_token)]) -> dict[str, Any]:
        """The caller's GitHub profile, read from GitHub's API with their own GitHub token."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        # A client per call keeps the example short; a real app opens one in its lifespan.
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{api}/user", headers=headers)
        if response.status_code != 200:
            # GitHub's status only: its answer may echo request details.
            raise HTTPException(status_code=502, detail=f"GitHub answered {response.status_code}")
        profile = response.json()
        return {key: profile.get(key) for key in ("login", "name", "public_repos", "followers", "html_url")}

    MCPBridge(app, auth=shim).mount_http("/mcp")
    return app


def shim_from_env(public_url: str) -> OAuthShim:
    env = os.environ
    missing = [n for n in ("MCP_OAUTH_SHIM_CLIENT_ID", "MCP_OAUTH_SHIM_CLIENT_SECRET") if not env.get(n)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} (see the top of examples/bridge_github_tools.py).")
    keys = [k.strip() for k in env.get("MCP_OAUTH_SHIM_SECRET_KEYS", "").split(",") if k.strip()]
    # With a random key, every restart signs users out (and their carried GitHub tokens with them).
    keys = keys or [secrets.token_urlsafe(32)]
    return OAuthShim(
        public_url=public_url,
        upstream=Upstream.github(env["MCP_OAUTH_SHIM_CLIENT_ID"], env["MCP_OAUTH_SHIM_CLIENT_SECRET"]),
        secret_keys=keys,
    )


if __name__ == "__main__":
    public_url = os.environ.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    app = build_app(shim_from_env(public_url))
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("MCP_OAUTH_SHIM_PORT", "8000")))

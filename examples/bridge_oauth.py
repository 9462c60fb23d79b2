"""Full OAuth: MCP clients log in with your existing IdP through the shim, then call your routes.

    export MCP_OAUTH_SHIM_UPSTREAM_ISSUER=https://your-tenant.eu.auth0.com/  # exactly as the IdP spells it
    export MCP_OAUTH_SHIM_CLIENT_ID=...                 # a confidential web app client
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_AUDIENCE_PARAM=audience       # Auth0; RFC 8707 IdPs: resource
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c "import secrets; print(secrets.token_urlsafe(48))")
    python examples/bridge_oauth.py

Register http://127.0.0.1:8000/oauth/callback as the only callback URL at the IdP; MCP clients
connect to http://127.0.0.1:8000/mcp. Routes declare the scopes they need with FastAPI's
`Security(bearer_token(shim), scopes=[...])`: plain HTTP callers are checked by that dependency,
MCP callers by the bridge, whose tool call without the scopes gets a 403 step-up challenge.
See docs/bridge-full-oauth.md. Listens on 127.0.0.1 only.
"""

# No `from __future__ import annotations`: FastAPI must see the Security(...) objects built in build_app.

import os
import secrets
import sys
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Security
from mcp.server.auth.provider import AccessToken

from mcp_bridge import MCPBridge, bearer_token
from mcp_oauth_shim import OAuthShim, Upstream


def build_app(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="notes")
    notes: list[str] = ["first note"]
    verified = bearer_token(shim)  # checks the token (and the route's scopes) on every request

    @app.get("/notes", operation_id="list_notes")
    def list_notes(token: Annotated[AccessToken, Security(verified, scopes=["notes:read"])]) -> list[str]:
        """All notes."""
        return notes

    @app.post("/notes", operation_id="add_note")
    def add_note(
        text: str, token: Annotated[AccessToken, Security(verified, scopes=["notes:read", "notes:write"])]
    ) -> list[str]:
        """Add a note."""
        notes.append(text)
        return notes

    @app.get("/me", operation_id="whoami")
    def whoami(token: Annotated[AccessToken, Security(verified)]) -> dict[str, object]:
        """Who is calling: the token's subject and scopes."""
        return {"subject": token.subject, "scopes": token.scopes}

    MCPBridge(app, auth=shim, hide_unreachable_tools=True).mount_http("/mcp")
    return app


def shim_from_env(public_url: str) -> OAuthShim:
    env = os.environ
    required = ("MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "MCP_OAUTH_SHIM_CLIENT_ID", "MCP_OAUTH_SHIM_CLIENT_SECRET")
    missing = [n for n in required if not env.get(n)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} (see the top of examples/bridge_oauth.py).")
    resource = public_url + "/mcp"
    upstream = Upstream.oidc(
        issuer=env["MCP_OAUTH_SHIM_UPSTREAM_ISSUER"],
        client_id=env["MCP_OAUTH_SHIM_CLIENT_ID"],
        client_secret=env["MCP_OAUTH_SHIM_CLIENT_SECRET"],
        audience=env.get("MCP_OAUTH_SHIM_AUDIENCE", resource),
        audience_param=env.get("MCP_OAUTH_SHIM_AUDIENCE_PARAM", "resource"),  # type: ignore[arg-type]
        default_scopes=("openid", "profile", "notes:read"),
        extra_scopes=("offline_access",),
    )
    keys = [k.strip() for k in env.get("MCP_OAUTH_SHIM_SECRET_KEYS", "").split(",") if k.strip()]
    keys = keys or [secrets.token_urlsafe(32)]
    return OAuthShim(
        public_url=public_url,
        resource=resource,
        upstream=upstream,
        secret_keys=keys,
        scopes_supported=["openid", "profile", "notes:read", "notes:write"],
    )


if __name__ == "__main__":
    public_url = os.environ.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    app = build_app(shim_from_env(public_url))
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("MCP_OAUTH_SHIM_PORT", "8000")))

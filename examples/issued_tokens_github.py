"""Sign in to an MCP server with GitHub: the shim issues its own access tokens.

GitHub's access tokens are opaque and made for GitHub's API, not for your MCP server, so the
shim cannot pass them through. With ``Upstream.github`` it runs in issued-token mode: after the
GitHub login it learns the user from GitHub's API (``GET /user``: the numeric id is the
subject) and gives the MCP client its OWN access token, a JWT for this server signed with a key
derived from your secret keys (public keys at ``/oauth/jwks``), and its own refresh token. The
GitHub token never reaches the client; it travels encrypted inside the shim's token, and a
tool can open it to call GitHub's API as the user (the ``github_repositories`` tool below).

Create an OAuth App at https://github.com/settings/developers with the callback URL
``http://127.0.0.1:8000/oauth/callback``, then:

    export MCP_OAUTH_SHIM_CLIENT_ID=...          # the OAuth App's client ID
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...      # one of its client secrets
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    python examples/issued_tokens_github.py

MCP clients then connect to ``http://127.0.0.1:8000/mcp``. Optional: MCP_OAUTH_SHIM_PUBLIC_URL
(where clients reach this server). docs/idp/github.md explains the GitHub side.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_oauth_shim import ConfigurationError, IssuedAccessToken, OAuthShim, Upstream

REQUIRED = ("MCP_OAUTH_SHIM_CLIENT_ID", "MCP_OAUTH_SHIM_CLIENT_SECRET", "MCP_OAUTH_SHIM_SECRET_KEYS")
GITHUB_API = "https://api.github.com"


def shim_from_env(env: Mapping[str, str], http_client: httpx.AsyncClient | None = None, **github_options: Any) -> OAuthShim:
    """The shim for GitHub; ``github_options`` override the preset's endpoints (GitHub
    Enterprise Server, or a stand-in in tests), ``http_client`` is how it reaches GitHub."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise SystemExit(f"issued_tokens_github.py: set {', '.join(missing)} (see the top of the file).")
    public_url = env.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    keys = [k.strip() for k in env["MCP_OAUTH_SHIM_SECRET_KEYS"].split(",") if k.strip()]
    try:
        upstream = Upstream.github(env["MCP_OAUTH_SHIM_CLIENT_ID"], env["MCP_OAUTH_SHIM_CLIENT_SECRET"], **github_options)
        # The preset prefers issued tokens: no issue_tokens=True needed.
        return OAuthShim(public_url=public_url, upstream=upstream, secret_keys=keys, http_client=http_client)
    except ConfigurationError as exc:
        raise SystemExit(f"issued_tokens_github.py: {exc}") from None


def create_mcp(api_url: str = GITHUB_API, http: httpx.AsyncClient | None = None) -> MCPServer:
    """Two tools: who is signed in, and their repositories (GitHub's API called as the user)."""
    mcp = MCPServer("GitHub sign-in example")

    @mcp.tool()
    def whoami() -> dict[str, object]:
        """The signed-in GitHub user: numeric id, login and e-mail."""
        token = get_access_token()
        if not isinstance(token, IssuedAccessToken):
            return {"subject": None}
        return {"id": token.subject, "login": token.preferred_username, "email": token.email}

    @mcp.tool()
    async def github_repositories() -> list[str]:
        """The names of the signed-in user's repositories, from GitHub's API."""
        token = get_access_token()
        github_token = token.upstream_access_token() if isinstance(token, IssuedAccessToken) else None
        if github_token is None:
            raise ValueError("No GitHub token for this session; sign in again.")
        headers = {"Authorization": f"Bearer {github_token}", "Accept": "application/vnd.github+json"}
        async with contextlib.AsyncExitStack() as stack:
            client = http or await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            answer = await client.get(api_url + "/user/repos", headers=headers)
        answer.raise_for_status()
        return [repo["full_name"] for repo in answer.json()]

    return mcp


def build_app(shim: OAuthShim, mcp: MCPServer) -> Starlette:
    """The shim's endpoints (open) and the MCP endpoint (the shim's tokens only)."""
    origin = urlsplit(shim.public_url)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(
            allowed_hosts=[origin.netloc], allowed_origins=[f"{origin.scheme}://{origin.netloc}"]
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shim.lifespan(app), mcp.session_manager.run():
            yield

    return Starlette(routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))], lifespan=lifespan)


def main() -> None:
    shim = shim_from_env(os.environ)
    port = urlsplit(shim.public_url).port or 8000
    print(f"MCP endpoint: {shim.resource}   (GitHub callback URL: {shim.public_url}/oauth/callback)")
    uvicorn.run(build_app(shim, create_mcp()), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()

"""Machine clients and enterprise users: FastAPI routes as MCP tools, with tokens the shim signs.

    export MCP_OAUTH_SHIM_UPSTREAM_ISSUER=https://your-tenant.eu.auth0.com/  # for user logins
    export MCP_OAUTH_SHIM_CLIENT_ID=...
    export MCP_OAUTH_SHIM_CLIENT_SECRET=...
    export MCP_OAUTH_SHIM_SECRET_KEYS=$(python -c "import secrets; print(secrets.token_urlsafe(48))")
    export NIGHTLY_REPORT_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
    # optional: accept ID-JAGs of your enterprise IdP for the client "desk-agent"
    export ENTERPRISE_IDP_ISSUER=https://login.acme.example
    export DESK_AGENT_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
    python examples/machine_clients.py

Two pre-registered machine clients:

- ``nightly-report`` (client credentials, docs/client-credentials.md): a job with no user behind
  it; its tokens name the job itself (``sub`` = ``client_id``) and carry ``notes:read`` only,
  so the ``add_note`` tool is refused to it (403 ``insufficient_scope``);
- ``desk-agent`` (enterprise-managed authorization, docs/enterprise-managed-authorization.md):
  an MCP client that presents ID-JAGs of your enterprise IdP; its tokens name the enterprise
  user.

The shim signs its own access tokens (``issue_tokens=True``). A client to try it with is
``examples/machine_client_call.py``. Listens on 127.0.0.1 only.
"""

# No `from __future__ import annotations`: FastAPI must see the Security(...) objects built in build_app.

import os
import sys
from collections.abc import Mapping
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Security
from mcp.server.auth.provider import AccessToken

from mcp_bridge import MCPBridge, bearer_token
from mcp_oauth_shim import EnterpriseIdP, MachineClient, OAuthShim, Upstream

SCOPES = ["notes:read", "notes:write"]
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def shim_from_env(env: Mapping[str, str], public_url: str = "http://127.0.0.1:8000") -> OAuthShim:
    required = (
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER",
        "MCP_OAUTH_SHIM_CLIENT_ID",
        "MCP_OAUTH_SHIM_CLIENT_SECRET",
        "MCP_OAUTH_SHIM_SECRET_KEYS",
        "NIGHTLY_REPORT_SECRET",
    )
    missing = [name for name in required if not env.get(name)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} (see the top of examples/machine_clients.py).")
    machine_clients = [
        MachineClient("nightly-report", client_secret=env["NIGHTLY_REPORT_SECRET"], scopes=("notes:read",)),
    ]
    enterprise_idps = []
    if env.get("ENTERPRISE_IDP_ISSUER"):
        # The IdP's keys are found through its discovery document (or give jwks_uri=...).
        enterprise_idps.append(EnterpriseIdP(issuer=env["ENTERPRISE_IDP_ISSUER"], allowed_clients=frozenset({"desk-agent"})))
        machine_clients.append(
            MachineClient(
                "desk-agent", client_secret=env["DESK_AGENT_SECRET"], grant_types=frozenset({JWT_BEARER}), scopes=tuple(SCOPES)
            )
        )
    upstream = Upstream.oidc(
        issuer=env["MCP_OAUTH_SHIM_UPSTREAM_ISSUER"],
        client_id=env["MCP_OAUTH_SHIM_CLIENT_ID"],
        client_secret=env["MCP_OAUTH_SHIM_CLIENT_SECRET"],
    )
    return OAuthShim(
        public_url=public_url,
        upstream=upstream,
        secret_keys=[k.strip() for k in env["MCP_OAUTH_SHIM_SECRET_KEYS"].split(",") if k.strip()],
        issue_tokens=True,
        # MCP clients request what the resource advertises; each machine client gets its share.
        scopes_supported=SCOPES,
        machine_clients=machine_clients,
        enterprise_idps=enterprise_idps,
    )


def build_app(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="notes")
    notes: list[str] = ["first note"]
    verified = bearer_token(shim)

    @app.get("/notes", operation_id="list_notes")
    def list_notes(token: Annotated[AccessToken, Security(verified, scopes=["notes:read"])]) -> list[str]:
        """All notes."""
        return notes

    @app.post("/notes", operation_id="add_note")
    def add_note(text: str, token: Annotated[AccessToken, Security(verified, scopes=["notes:write"])]) -> list[str]:
        """Add a note."""
        notes.append(f"{text} (by {token.subject})")
        return notes

    @app.get("/me", operation_id="whoami")
    def whoami(token: Annotated[AccessToken, Security(verified)]) -> dict[str, object]:
        """Who is calling: a machine (subject = its client_id) or an enterprise user."""
        return {"subject": token.subject, "client_id": token.client_id, "scopes": token.scopes}

    MCPBridge(app, auth=shim).mount_http("/mcp")
    return app


if __name__ == "__main__":
    uvicorn.run(build_app(shim_from_env(os.environ)), host="127.0.0.1", port=8000)

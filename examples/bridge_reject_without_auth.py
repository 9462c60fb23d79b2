"""Reject without auth: FastAPI dependencies guard the MCP endpoint itself.

Every request to /mcp runs `dependencies` first; a refusal is a 401 with
`WWW-Authenticate: Bearer`, so clients know to authenticate. The routes still receive the
client's Authorization header (token passthrough). See docs/bridge-reject-without-auth.md.

    API_TOKEN=change-me python examples/bridge_reject_without_auth.py
    curl -i -X POST http://127.0.0.1:8000/mcp      # -> 401, WWW-Authenticate: Bearer

Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mcp_bridge import MCPBridge

# auto_error=False: the dependency decides, and answers 401 (not FastAPI's older bare 403).
bearer = HTTPBearer(auto_error=False)


def build_app(api_token: str) -> FastAPI:
    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if credentials is None or not hmac.compare_digest(credentials.credentials, api_token):
            raise HTTPException(status_code=401, detail="a valid bearer token is required")

    app = FastAPI(title="reports")

    @app.get("/reports/summary", operation_id="report_summary")
    def report_summary() -> dict[str, int]:
        """Counts of open and closed tickets."""
        return {"open": 3, "closed": 14}

    MCPBridge(app, name="reports", dependencies=[Depends(require_token)]).mount_http("/mcp")
    return app


if __name__ == "__main__":
    token = os.environ.get("API_TOKEN")
    if not token:
        raise SystemExit("Set API_TOKEN: the bearer token the MCP endpoint accepts.")
    uvicorn.run(build_app(token), host="127.0.0.1", port=int(os.environ.get("MCP_OAUTH_SHIM_PORT", "8000")))

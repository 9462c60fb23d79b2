"""Token passthrough: the bridge forwards the MCP client's Authorization header to your routes.

The routes decide who may do what, exactly as they do for your other HTTP clients; the bridge
checks nothing itself. Use it when the API already validates tokens (or API keys) and MCP
clients are given the same credentials. See docs/bridge-token-passthrough.md.

    API_TOKEN=change-me python examples/bridge_passthrough.py
    # connect an MCP client to http://127.0.0.1:8000/mcp with "Authorization: Bearer change-me"

Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from mcp_bridge import MCPBridge

bearer = HTTPBearer()


class Item(BaseModel):
    id: int
    name: str


ITEMS = {1: Item(id=1, name="pen"), 2: Item(id=2, name="notebook")}


def build_app(api_token: str) -> FastAPI:
    def require_token(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> None:
        # The same check the API applies to every client; MCP calls arrive with the header.
        if not hmac.compare_digest(credentials.credentials, api_token):
            raise HTTPException(status_code=401, detail="bad token", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="items", dependencies=[Depends(require_token)])

    @app.get("/items", operation_id="list_items")
    def list_items() -> list[Item]:
        """All items."""
        return list(ITEMS.values())

    @app.get("/items/{item_id}", operation_id="get_item")
    def get_item(item_id: int) -> Item:
        """One item by id."""
        if item_id not in ITEMS:
            raise HTTPException(status_code=404, detail="no such item")
        return ITEMS[item_id]

    # forward_headers=("authorization",) is the default: the client's token reaches the routes.
    MCPBridge(app, name="items").mount_http("/mcp")
    return app


if __name__ == "__main__":
    token = os.environ.get("API_TOKEN")
    if not token:
        raise SystemExit("Set API_TOKEN: the bearer token your routes accept.")
    uvicorn.run(build_app(token), host="127.0.0.1", port=int(os.environ.get("MCP_OAUTH_SHIM_PORT", "8000")))

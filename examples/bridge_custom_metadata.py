"""Custom metadata: your authorization server already does what MCP clients need; the shim only
makes it findable (RFC 9728 resource metadata + your RFC 8414 document) and checks tokens.

    export OAUTH_METADATA_FILE=as-metadata.json   # issuer, authorization_endpoint, token_endpoint,
                                                  # jwks_uri (to verify tokens), registration_endpoint ...
    python examples/bridge_custom_metadata.py

No /oauth/* endpoints run in this mode. See docs/bridge-custom-metadata.md. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os

import uvicorn
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from mcp_oauth_shim import OAuthShim


def build_app(shim: OAuthShim) -> FastAPI:
    app = FastAPI(title="inventory")

    @app.get("/stock/{sku}", operation_id="stock_level")
    def stock_level(sku: str) -> dict[str, object]:
        """How many units of a product are in stock."""
        return {"sku": sku, "units": 12}

    MCPBridge(app, auth=shim).mount_http("/mcp")
    return app


if __name__ == "__main__":
    path = os.environ.get("OAUTH_METADATA_FILE")
    if not path:
        raise SystemExit("Set OAUTH_METADATA_FILE to a JSON file holding your RFC 8414 document.")
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    public_url = os.environ.get("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    # No upstream= and no secret_keys=: nothing is proxied and nothing is signed in this mode.
    shim = OAuthShim(public_url=public_url, custom_metadata=document)
    uvicorn.run(build_app(shim), host="127.0.0.1", port=int(os.environ.get("MCP_OAUTH_SHIM_PORT", "8000")))

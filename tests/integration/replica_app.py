"""One replica of the shim for tests/integration/test_replicas.py, run as its own uvicorn
process: ``python -m uvicorn --factory tests.integration.replica_app:build --port N``.

The configuration arrives in the environment (the IdP's client secret and the shim's secret
key included, so ``ps`` does not show them): every replica gets the same values, which is
all the shim needs to serve the users of another replica. The MCP server runs stateless, as
replicas behind a load balancer without session affinity must.
"""

from __future__ import annotations

import os

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from mcp_oauth_shim import OAuthShim, Upstream
from tests.peers.mcp_under_test import build_mcp_server

ENVIRONMENT = (
    "REPLICA_PUBLIC_URL",
    "REPLICA_IDP_ISSUER",
    "REPLICA_IDP_CLIENT_ID",
    "REPLICA_IDP_CLIENT_SECRET",
    "REPLICA_SECRET_KEY",
)


def build() -> ASGIApp:
    public_url, issuer, client_id, client_secret, secret_key = (os.environ[name] for name in ENVIRONMENT)
    mcp_url = public_url + "/mcp"
    upstream = Upstream.oidc(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        audience=mcp_url,
        audience_param="resource",
        default_scopes=("openid", "profile", "email"),
        extra_scopes=("offline_access",),
        token_auth_method="client_secret_basic",
    )
    shim = OAuthShim(public_url=public_url, resource=mcp_url, upstream=upstream, secret_keys=[secret_key])
    mcp = build_mcp_server()
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            allowed_hosts=[public_url.split("://", 1)[1]], allowed_origins=[public_url]
        ),
    )
    return Starlette(
        routes=[*shim.routes, Mount("/", app=shim.protect(mcp_app))],
        lifespan=lambda _app: mcp.session_manager.run(),
    )

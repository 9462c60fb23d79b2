"""An application that mounts the shim's routes and nothing else, for a real uvicorn in a
subprocess (tests/shim/test_access_logs.py). The shim is built when this module is imported;
``ACCESS_LOG_TEST_REDACT=0`` builds it with ``redact_access_logs=False``. The IdP is never
called: the requests the test makes are refused before that."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from mcp_oauth_shim import OAuthShim, Upstream

shim = OAuthShim(
    public_url="http://127.0.0.1:8000",
    upstream=Upstream(
        client_id="upstream-client",
        client_secret="upstream-secret",
        issuer="http://127.0.0.1:9",
        authorization_endpoint="http://127.0.0.1:9/authorize",
        token_endpoint="http://127.0.0.1:9/token",
    ),
    secret_keys=["k" * 48],
    redact_access_logs=os.environ.get("ACCESS_LOG_TEST_REDACT", "1") != "0",
)
app = Starlette(routes=shim.routes)

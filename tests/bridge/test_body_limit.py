"""A request body over the endpoint's limit is refused with 413 before it is parsed or reaches
the SDK, on Streamable HTTP and on the legacy SSE transport's message endpoint."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge
from mcp_bridge.transport import DEFAULT_MAX_BODY_SIZE
from tests.bridge.sample_app import build_app
from tests.bridge.token_issuer import TokenIssuer

BASE_URL = "http://127.0.0.1:8000"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
# A JSON string one byte longer than the limit allows.
TOO_LARGE = b'"' + b"x" * (DEFAULT_MAX_BODY_SIZE - 1) + b'"'


@pytest.mark.parametrize("stateless", [True, False], ids=["stateless", "stateful"])
def test_streamable_http_refuses_a_body_over_the_limit_with_413(stateless: bool) -> None:
    app, calls = build_app()
    MCPBridge(app).mount_http("/mcp", stateless=stateless)
    with TestClient(app, base_url=BASE_URL) as client:
        response = client.post("/mcp", content=TOO_LARGE, headers=HEADERS)
    assert (response.status_code, response.text) == (413, "Request body too large")
    assert calls.seen == []


def test_sse_message_endpoint_refuses_a_body_over_the_limit_with_413() -> None:
    issuer = TokenIssuer()
    app, calls = build_app()
    MCPBridge(app, auth=issuer.shim(BASE_URL)).mount_sse("/sse")
    token = issuer.token(audience=BASE_URL + "/mcp")
    with TestClient(app, base_url=BASE_URL) as client:
        response = client.post(
            "/sse/messages/?session_id=" + "0" * 32,
            content=TOO_LARGE,
            headers={**HEADERS, "authorization": f"Bearer {token}"},
        )
    assert (response.status_code, response.text) == (413, "Request body too large")
    assert calls.seen == []

"""What ``/readyz`` tells whoever can reach the public port when the IdP is unusable: that it
is, and how (an HTTP status, not JSON), but not where the shim reads the IdP's metadata, which
may be an internal address (a cluster service name, a private host). The full description
goes to the operator's log instead."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream

INTERNAL = "http://127.0.0.1:8443/internal-realm-7f3a/.well-known/openid-configuration"


def refused(status: int, body: bytes, content_type: str):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return answer


@pytest.mark.parametrize(
    ("status", "body", "content_type", "said"),
    [
        (404, b"not here", "text/plain", "answered 404"),
        (200, b"<html>login</html>", "text/html", "not declared as JSON"),
        (200, b"[1, 2]", "application/json", "not a JSON object"),
    ],
    ids=["404", "html", "array"],
)
def test_readiness_names_the_failure_without_the_internal_metadata_url(status, body, content_type, said, caplog):
    shim = OAuthShim(
        public_url="http://127.0.0.1:8000",
        upstream=Upstream.oidc(issuer="http://127.0.0.1:8443", metadata_url=INTERNAL, client_id="c", client_secret="s"),
        secret_keys=["k" * 48],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(refused(status, body, content_type))),
    )
    with caplog.at_level("WARNING"):
        answer = TestClient(shim.app, base_url="http://127.0.0.1:8000").get("/readyz")
    assert answer.status_code == 503
    assert said in answer.json()["reason"]
    assert "internal-realm-7f3a" not in answer.text and "8443" not in answer.text
    assert any(INTERNAL in record.getMessage() and said in record.getMessage() for record in caplog.records)

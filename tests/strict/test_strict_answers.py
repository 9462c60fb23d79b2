"""The answers the endpoints give for strict mode's refusals: RFC 6749 §5.2 JSON with
Retry-After, never cached."""

from __future__ import annotations

import json

from mcp_oauth_shim.strict import RateDecision, StrictModeUnavailable
from mcp_oauth_shim.strict.answers import rate_limited_response, unavailable_response


def test_a_rate_limited_request_gets_429_with_retry_after() -> None:
    response = rate_limited_response(RateDecision(False, 17))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "17"
    assert response.headers["cache-control"] == "no-store"
    body = json.loads(response.body)
    assert body["error"] == "temporarily_unavailable"
    assert "17" in body["error_description"]


def test_an_unavailable_store_gets_503_temporarily_unavailable_with_retry_after() -> None:
    response = unavailable_response(StrictModeUnavailable(5))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    assert json.loads(response.body)["error"] == "temporarily_unavailable"

"""`bearer_token(shim)` on ordinary routes decides as the shim's `RequireBearer` does
(same statuses and challenges as the MCP endpoint), in FastAPI's `{"detail"}` body."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Security
from starlette.testclient import TestClient

from mcp_bridge import bearer_token
from mcp_oauth_shim import OAuthShim
from tests.bridge.test_gate_refusals import URL, _shim_of_an_unreachable_idp
from tests.bridge.token_issuer import TokenIssuer

ISSUER = TokenIssuer()


def _client(shim: OAuthShim) -> TestClient:
    app = FastAPI()
    verified = bearer_token(shim)

    @app.get("/notes")
    # (A default rather than `Annotated`: the dependency is a local, which a string annotation cannot name.)
    def notes(token: object = Security(verified, scopes=["notes:read"])) -> dict[str, list[str]]:
        return {"scopes": list(getattr(token, "scopes", []))}

    return TestClient(app, base_url=URL)


def _token(*scopes: str) -> str:
    return ISSUER.token(audience=URL + "/mcp", scopes=scopes)


CASES = {
    "no-credentials": ([], 401, None),
    "two-authorization-headers": ([("authorization", "Bearer a"), ("authorization", "Bearer b")], 400, "invalid_request"),
    "not-a-b64token": ([("authorization", "Bearer two words")], 400, "invalid_request"),
    "not-a-jwt": ([("authorization", "Bearer not-a-token")], 401, "invalid_token"),
    "scope-missing": ([("authorization", f"Bearer {_token('other')}")], 403, "insufficient_scope"),
    "scope-granted": ([("authorization", f"Bearer {_token('notes:read')}")], 200, None),
}


@pytest.mark.parametrize(("headers", "status", "error"), CASES.values(), ids=CASES.keys())
def test_the_route_refuses_as_the_shim_does(headers: list[tuple[str, str]], status: int, error: str | None) -> None:
    with _client(ISSUER.shim(URL)) as client:
        response = client.get("/notes", headers=httpx.Headers(headers))
    assert response.status_code == status
    challenge = response.headers.get("www-authenticate", "")
    if status == 200:
        assert response.json() == {"scopes": ["notes:read"]}
    elif error is None:
        assert challenge.startswith("Bearer ") and "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge


def test_an_unreachable_idp_is_a_gateway_error_not_a_401() -> None:
    with _client(_shim_of_an_unreachable_idp(ISSUER)) as client:
        response = client.get("/notes", headers={"authorization": f"Bearer {_token('notes:read')}"})
    assert response.status_code in (502, 504)
    assert "www-authenticate" not in response.headers

"""FastAPI-MCP's Auth0 example with `dependencies=[...]`: a bad token is refused by the shim
before the user's dependency runs, so the 401 carries RFC 6750 §3's challenge
(`error="invalid_token"`, `scope`, `resource_metadata`), not the dependency's bare one."""

from __future__ import annotations

import httpx

# auth0: that module's fixture (the Auth0 example on loopback), shared rather than rebuilt.
from tests.bridge.test_compat_oauth import INIT, MCP_HEADERS, Deployment, auth0  # noqa: F401


def test_a_bad_token_gets_the_shims_challenge_not_the_dependencys(auth0: Deployment) -> None:  # noqa: F811
    response = httpx.post(
        auth0.mcp, json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer not-a-token"}, timeout=10
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert 'scope="' in challenge
    assert f'resource_metadata="{auth0.url}/.well-known/oauth-protected-resource/mcp"' in challenge


def test_a_request_without_token_names_the_scopes_to_ask_for(auth0: Deployment) -> None:  # noqa: F811
    response = httpx.post(auth0.mcp, json=INIT, headers=MCP_HEADERS, timeout=10)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code without credentials
    assert 'scope="' in challenge


def test_two_authorization_headers_are_a_malformed_request(auth0: Deployment) -> None:  # noqa: F811
    headers = httpx.Headers([*MCP_HEADERS.items(), ("authorization", "Bearer a"), ("authorization", "Bearer b")])
    response = httpx.post(auth0.mcp, json=INIT, headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_a_bad_token_is_answered_with_the_oauth_error_body(auth0: Deployment) -> None:  # noqa: F811
    response = httpx.post(
        auth0.mcp, json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer not-a-token"}, timeout=10
    )
    assert response.json()["error"] == "invalid_token"  # RFC 6750 §3 body, not FastAPI's {"detail": ...}

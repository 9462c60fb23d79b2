"""What the shim sends the IdP's authorization endpoint with the issued-token presets: the
preset's scopes and parameters, no resource or audience, and (GitHub) no discovery at all."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream

from .kit import CLIENT_REDIRECT, pkce_pair

PUBLIC_URL = "http://127.0.0.1:8000"
GOOGLE_DISCOVERY = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
    "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
    "code_challenge_methods_supported": ["plain", "S256"],
}
COGNITO_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
COGNITO_DISCOVERY = {
    "issuer": COGNITO_ISSUER,
    "authorization_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
    "token_endpoint": "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/token",
    "jwks_uri": COGNITO_ISSUER + "/.well-known/jwks.json",
}


def upstream_authorize_request(upstream: Upstream, discovery: dict | None) -> tuple[str, dict[str, str], list[str]]:
    """Register, authorize and approve as an MCP client would; the IdP URL the browser is sent
    to (without query), its parameters, and the URLs the shim fetched on the way."""
    fetched: list[str] = []

    def idp(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json=discovery) if discovery else httpx.Response(404)

    shim = OAuthShim(
        public_url=PUBLIC_URL,
        upstream=upstream,
        secret_keys=["k" * 48],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(idp)),
    )
    client = TestClient(shim.app, base_url=PUBLIC_URL)
    client_id = client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CLIENT_REDIRECT,
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        "resource": PUBLIC_URL + "/mcp",
    }
    page = client.get("/oauth/authorize", params=params)
    ticket = page.text.split('name="ticket" value="')[1].split('"')[0]
    response = client.post("/oauth/consent", data={"ticket": ticket, "decision": "approve"}, follow_redirects=False)
    location = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    return f"{location.scheme}://{location.netloc}{location.path}", query, fetched


@pytest.mark.parametrize(
    ("upstream", "discovery", "endpoint", "expected"),
    [
        (
            Upstream.google("id.apps.googleusercontent.com", "s"),
            GOOGLE_DISCOVERY,
            "https://accounts.google.com/o/oauth2/v2/auth",
            {"scope": "openid email profile", "access_type": "offline", "prompt": "consent"},
        ),
        (
            Upstream.github("Iv1.abc", "s"),
            None,
            "https://github.com/login/oauth/authorize",
            {"scope": "read:user user:email"},
        ),
        (
            Upstream.cognito(region="eu-west-1", user_pool_id="eu-west-1_AbC123", client_id="c", client_secret="s"),
            COGNITO_DISCOVERY,
            "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/authorize",
            {"scope": "openid email profile"},
        ),
    ],
    ids=["google", "github", "cognito"],
)
def test_authorize_request_carries_the_presets_parameters_and_no_audience(
    upstream: Upstream, discovery: dict | None, endpoint: str, expected: dict[str, str]
) -> None:
    url, query, _ = upstream_authorize_request(upstream, discovery)
    assert url == endpoint
    assert {k: query.get(k) for k in expected} == expected
    assert (query["client_id"], query["code_challenge_method"]) == (upstream.client_id, "S256")
    assert "resource" not in query and "audience" not in query


def test_github_needs_no_discovery_document() -> None:
    _, _, fetched = upstream_authorize_request(Upstream.github("Iv1.abc", "s"), None)
    assert fetched == []

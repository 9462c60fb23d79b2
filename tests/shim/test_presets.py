"""IdP presets are values built on Upstream.oidc: check what each one sets."""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream

from .kit import CLIENT_REDIRECT, pkce_pair

PRESETS = [
    (
        Upstream.auth0(domain="tenant.eu.auth0.com", client_id="c", client_secret="s", audience="https://api.example/"),
        "https://tenant.eu.auth0.com/",
        "audience",
        "https://api.example/",
    ),
    (
        Upstream.keycloak(base_url="https://kc.example/", realm="acme", client_id="c", client_secret="s"),
        "https://kc.example/realms/acme",
        "none",
        None,
    ),
    (
        Upstream.okta(domain="acme.okta.com", client_id="c", client_secret="s"),
        "https://acme.okta.com/oauth2/default",
        "none",
        "api://default",
    ),
    (
        Upstream.entra(tenant_id="0000-tenant", client_id="app-id", client_secret="s"),
        "https://login.microsoftonline.com/0000-tenant/v2.0",
        "none",
        "app-id",
    ),
]


@pytest.mark.parametrize(("upstream", "issuer", "audience_param", "audience"), PRESETS)
def test_preset_values(upstream, issuer, audience_param, audience):
    assert upstream.issuer == issuer
    assert upstream.metadata_url == issuer.rstrip("/") + "/.well-known/openid-configuration"
    assert upstream.audience_param == audience_param
    assert upstream.audience == audience
    assert "offline_access" in upstream.extra_scopes


def test_preset_options_override_the_defaults():
    upstream = Upstream.auth0(
        domain="t.auth0.com", client_id="c", client_secret="s", audience="a", extra_scopes=(), token_auth_method="client_secret_basic"
    )
    assert upstream.extra_scopes == ()
    assert upstream.token_auth_method == "client_secret_basic"


def test_entra_prefixes_api_scopes_but_not_openid_ones():
    upstream = Upstream.entra(tenant_id="t", client_id="app", client_secret="s")
    assert upstream.upstream_scope("openid profile mcp.access offline_access") == (
        "openid profile api://app/mcp.access offline_access"
    )
    custom = Upstream.entra(tenant_id="t", client_id="app", client_secret="s", app_id_uri="https://api.example/")
    assert custom.upstream_scope("mcp.access") == "https://api.example/mcp.access"


def test_entra_authorize_request_carries_prefixed_scopes_and_no_resource():
    issuer = "https://login.microsoftonline.com/t/v2.0"
    doc = {"issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token"}
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=doc)))
    shim = OAuthShim(
        public_url="http://127.0.0.1:8000",
        upstream=Upstream.entra(tenant_id="t", client_id="app", client_secret="s"),
        secret_keys=["k" * 40],
        scopes_supported=["openid", "mcp.access"],
        http_client=http,
    )
    client = TestClient(shim.app, base_url="http://127.0.0.1:8000")
    client_id = client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": CLIENT_REDIRECT, "scope": "openid mcp.access",
        "code_challenge": pkce_pair()[1], "code_challenge_method": "S256", "resource": "http://127.0.0.1:8000/mcp",
    }
    page = client.get("/oauth/authorize", params=params)
    ticket = page.text.split('name="ticket" value="')[1].split('"')[0]
    response = client.post("/oauth/consent", data={"ticket": ticket, "decision": "approve"}, follow_redirects=False)
    upstream = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    assert upstream["scope"] == "openid api://app/mcp.access offline_access"
    assert "resource" not in upstream and "audience" not in upstream

"""The examples build, serve the shim's documents, refuse anonymous callers and let signed-in ones in.

No server is started and nothing leaves the process: each example's app runs under Starlette's
TestClient, and the identity provider is a discovery document plus a JWKS served in-process
(through the shim's ``http_client`` hook) whose key signs the access tokens the tests send.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
PRM_URL = PUBLIC_URL + "/.well-known/oauth-protected-resource/mcp"
ISSUER = "https://idp.example.test/"
ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": ISSUER,
    "MCP_OAUTH_SHIM_CLIENT_ID": "upstream-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": "upstream-secret-never-shown",
    "MCP_OAUTH_SHIM_SECRET_KEYS": "a-signing-key-for-the-example-tests-0123456789",
    "MCP_OAUTH_SHIM_PUBLIC_URL": PUBLIC_URL,
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def load(name: str) -> ModuleType:
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Issuer:
    """An IdP reduced to what token verification reads: discovery, JWKS, and a signing key."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"}, private=True)
        base = ISSUER.rstrip("/")
        self.metadata = {
            "issuer": ISSUER,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/oauth/token",
            "revocation_endpoint": base + "/oauth/revoke",
            "jwks_uri": base + "/.well-known/jwks.json",
        }
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", lambda r: JSONResponse(self.metadata)),
                Route("/.well-known/jwks.json", self._jwks),
            ]
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER)

    def token(self, *, audience: str = RESOURCE, subject: str = "alice", scope: str = "openid profile") -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": audience, "iat": now, "exp": now + 600, "scope": scope}
        return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, claims, self.key)

    def shim(self) -> OAuthShim:
        """What the examples' shim_from_env builds, but reaching this IdP in-process."""
        upstream = Upstream.oidc(
            issuer=ISSUER, client_id=ENV["MCP_OAUTH_SHIM_CLIENT_ID"], client_secret=ENV["MCP_OAUTH_SHIM_CLIENT_SECRET"],
            audience=RESOURCE, default_scopes=("openid", "profile"),
        )
        return OAuthShim(public_url=PUBLIC_URL, upstream=upstream, secret_keys=[ENV["MCP_OAUTH_SHIM_SECRET_KEYS"]],
                         http_client=self.http())


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def challenge_of(response: httpx.Response) -> str:
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    return header


def whoami_over_mcp(client: TestClient, token: str) -> str:
    """initialize, notifications/initialized, tools/call whoami; the tool's text answer."""
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    init = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    })
    assert init.status_code == 200, init.text
    headers |= {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}},
    })
    assert call.status_code == 200, call.text
    messages = [json.loads(line[5:]) for line in call.text.splitlines() if line.startswith("data:")]
    result = next(m["result"] for m in messages if m.get("id") == 2)
    return result["content"][0]["text"]


# -- every example refuses to start with a clear message when its configuration is missing ----


@pytest.mark.parametrize("example", ["starlette_app", "fastapi_router"])
@pytest.mark.parametrize(
    "missing",
    ["MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "MCP_OAUTH_SHIM_CLIENT_ID", "MCP_OAUTH_SHIM_CLIENT_SECRET", "MCP_OAUTH_SHIM_SECRET_KEYS"],
)
def test_a_missing_variable_is_named_in_the_exit_message(example: str, missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(SystemExit) as exit_:
        load(example).shim_from_env(env)
    assert missing in str(exit_.value.code)


@pytest.mark.parametrize("example", ["starlette_app", "fastapi_router"])
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"MCP_OAUTH_SHIM_AUDIENCE_PARAM": "aud"}, "audience_param"),
        ({"MCP_OAUTH_SHIM_SECRET_KEYS": "short"}, "32 bytes"),
        ({"MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "http://idp.example.com"}, "https"),
        ({"MCP_OAUTH_SHIM_PUBLIC_URL": "http://api.example.com"}, "https"),
    ],
)
def test_a_bad_setting_exits_with_the_shims_explanation(example: str, change: dict[str, str], complaint: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        load(example).shim_from_env({**ENV, **change})
    assert complaint in str(exit_.value.code)


def test_the_upstream_secret_is_not_in_any_exit_message() -> None:
    with pytest.raises(SystemExit) as exit_:
        load("starlette_app").shim_from_env({**ENV, "MCP_OAUTH_SHIM_SECRET_KEYS": "short"})
    assert ENV["MCP_OAUTH_SHIM_CLIENT_SECRET"] not in str(exit_.value.code)


# -- starlette_app.py: shim.routes + an MCPServer behind shim.protect ------------------------


def test_starlette_app_from_env_serves_resource_metadata_and_registration() -> None:
    example = load("starlette_app")
    client = TestClient(example.build_app(example.shim_from_env(ENV), example.create_mcp()), base_url=PUBLIC_URL)
    prm = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == RESOURCE
    assert prm["authorization_servers"] == [PUBLIC_URL]
    registered = client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:33418/callback"]})
    assert registered.status_code == 201
    assert ENV["MCP_OAUTH_SHIM_CLIENT_SECRET"] not in registered.text


def test_starlette_app_answers_an_anonymous_mcp_call_with_a_challenge() -> None:
    example = load("starlette_app")
    client = TestClient(example.build_app(example.shim_from_env(ENV), example.create_mcp()), base_url=PUBLIC_URL)
    response = client.post("/mcp", headers=MCP_HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    challenge = challenge_of(response)
    assert f'resource_metadata="{PRM_URL}"' in challenge
    assert "error=" not in challenge  # RFC 6750 §3.1: no error when no token was sent


def test_starlette_app_serves_authorization_server_metadata_naming_itself(issuer: Issuer) -> None:
    example = load("starlette_app")
    client = TestClient(example.build_app(issuer.shim(), example.create_mcp()), base_url=PUBLIC_URL)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        doc = client.get(path).json()
        assert doc["issuer"] == PUBLIC_URL
        assert doc["token_endpoint"] == PUBLIC_URL + "/oauth/token"
        assert doc["revocation_endpoint"] == PUBLIC_URL + "/oauth/revoke"


def test_starlette_app_tool_sees_the_signed_in_user(issuer: Issuer) -> None:
    example = load("starlette_app")
    with TestClient(example.build_app(issuer.shim(), example.create_mcp()), base_url=PUBLIC_URL) as client:
        assert whoami_over_mcp(client, issuer.token(subject="alice")) == "alice"


def test_starlette_app_refuses_a_token_minted_for_another_api(issuer: Issuer) -> None:
    example = load("starlette_app")
    client = TestClient(example.build_app(issuer.shim(), example.create_mcp()), base_url=PUBLIC_URL)
    token = issuer.token(audience="https://other-api.example.test/mcp")
    response = client.post("/mcp", headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}, json={})
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge_of(response)


# -- fastapi_router.py: app.include_router(shim.router) + a route guarded by shim.verifier ----


def test_fastapi_router_from_env_serves_the_shim_and_guards_the_route() -> None:
    example = load("fastapi_router")
    client = TestClient(example.build_app(example.shim_from_env(ENV)), base_url=PUBLIC_URL)
    assert client.get("/.well-known/oauth-protected-resource/mcp").json()["authorization_servers"] == [PUBLIC_URL]
    assert client.post("/oauth/register", json={"redirect_uris": ["https://vscode.dev/redirect"]}).status_code == 201
    assert client.get("/api/health").json() == {"status": "ok"}
    anonymous = client.get("/api/me")
    assert anonymous.status_code == 401
    assert f'resource_metadata="{PRM_URL}"' in challenge_of(anonymous)
    assert "error=" not in challenge_of(anonymous)


def test_fastapi_router_keeps_the_shims_endpoints_out_of_the_openapi_schema() -> None:
    example = load("fastapi_router")
    paths = TestClient(example.build_app(example.shim_from_env(ENV))).get("/openapi.json").json()["paths"]
    assert set(paths) == {"/api/me", "/api/health"}


def test_fastapi_router_route_sees_the_signed_in_user(issuer: Issuer) -> None:
    example = load("fastapi_router")
    client = TestClient(example.build_app(issuer.shim()), base_url=PUBLIC_URL)
    response = client.get("/api/me", headers={"Authorization": f"Bearer {issuer.token(subject='bob')}"})
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "bob"
    assert response.json()["scopes"] == ["openid", "profile"]


@pytest.mark.parametrize(
    "token",
    [
        lambda issuer: issuer.token(audience="https://other-api.example.test/mcp"),
        lambda issuer: issuer.token()[:-6] + "AAAAAA",
        lambda issuer: "not-a-jwt",
    ],
    ids=["other audience", "bad signature", "opaque without introspection"],
)
def test_fastapi_router_refuses_bad_tokens_with_invalid_token(issuer: Issuer, token: Any) -> None:
    example = load("fastapi_router")
    client = TestClient(example.build_app(issuer.shim()), base_url=PUBLIC_URL)
    response = client.get("/api/me", headers={"Authorization": f"Bearer {token(issuer)}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge_of(response)


def test_fastapi_router_dependency_answers_403_naming_missing_scopes(issuer: Issuer) -> None:
    from fastapi import Depends, FastAPI

    example = load("fastapi_router")
    shim = issuer.shim()
    app = FastAPI()

    @app.get("/admin")
    async def admin(token: Any = Depends(example.bearer(shim, "admin:write"))) -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(app, base_url=PUBLIC_URL)
    response = client.get("/admin", headers={"Authorization": f"Bearer {issuer.token(scope='openid')}"})
    assert response.status_code == 403
    challenge = challenge_of(response)
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="admin:write"' in challenge
    allowed = client.get("/admin", headers={"Authorization": f"Bearer {issuer.token(scope='openid admin:write')}"})
    assert allowed.status_code == 200


# -- custom_metadata.py: a verbatim RFC 8414 document, nothing proxied -----------------------


@pytest.fixture
def metadata_file(tmp_path: Path, issuer: Issuer) -> Path:
    path = tmp_path / "as-metadata.json"
    path.write_text(json.dumps({**issuer.metadata, "registration_endpoint": ISSUER + "register", "x-vendor": 1}))
    return path


def test_custom_metadata_exits_clearly_without_its_file(tmp_path: Path) -> None:
    example = load("custom_metadata")
    with pytest.raises(SystemExit) as unset:
        example.shim_from_env({"MCP_OAUTH_SHIM_PUBLIC_URL": PUBLIC_URL})
    assert "OAUTH_METADATA_FILE" in str(unset.value.code)
    with pytest.raises(SystemExit) as absent:
        example.shim_from_env({"OAUTH_METADATA_FILE": str(tmp_path / "nope.json")})
    assert "cannot read" in str(absent.value.code)


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", json.dumps({"issuer": ISSUER})])
def test_custom_metadata_exits_clearly_on_an_unusable_document(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        load("custom_metadata").shim_from_env({"OAUTH_METADATA_FILE": str(path)})
    assert "custom_metadata.py:" in str(exit_.value.code)


def test_custom_metadata_serves_the_document_verbatim_and_no_oauth_endpoints(metadata_file: Path) -> None:
    example = load("custom_metadata")
    shim = example.shim_from_env({"OAUTH_METADATA_FILE": str(metadata_file)})
    assert not [route.path for route in shim.routes if route.path.startswith("/oauth/")]
    client = TestClient(example.build_app(shim), base_url=PUBLIC_URL)
    document = json.loads(metadata_file.read_text())
    assert client.get("/.well-known/oauth-authorization-server").json() == document
    assert client.get("/.well-known/openid-configuration").json() == document
    assert client.get("/.well-known/oauth-protected-resource/mcp").json()["authorization_servers"] == [ISSUER]
    # No registration endpoint of our own: the path falls through to the guarded MCP app.
    assert client.post("/oauth/register", json={"redirect_uris": ["https://vscode.dev/redirect"]}).status_code == 401
    anonymous = client.post("/mcp", headers=MCP_HEADERS, json={})
    assert anonymous.status_code == 401
    assert f'resource_metadata="{PRM_URL}"' in challenge_of(anonymous)


def test_custom_metadata_accepts_tokens_of_that_authorization_server(issuer: Issuer) -> None:
    example = load("custom_metadata")
    shim = OAuthShim(public_url=PUBLIC_URL, custom_metadata=issuer.metadata, http_client=issuer.http())
    with TestClient(example.build_app(shim), base_url=PUBLIC_URL) as client:
        assert whoami_over_mcp(client, issuer.token(subject="carol")) == "carol"


# -- fastapi_mcp_migration.py: FastAPI-MCP's Auth0 example, its .env and its port ------------------


@pytest.fixture
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("AUTH0_DOMAIN", "AUTH0_AUDIENCE"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)  # recorded, so whatever .env sets is undone after the test
    return tmp_path


def test_the_auth0_example_reads_dotenv_and_exported_variables_win(
    in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    (in_tmp_dir / ".env").write_text('AUTH0_DOMAIN="tenant.eu.auth0.com"\nAUTH0_AUDIENCE=https://from-the-file\n')
    monkeypatch.setenv("AUTH0_AUDIENCE", "https://exported")
    assert load("fastapi_mcp_migration").read_dotenv() is True
    assert os.environ["AUTH0_DOMAIN"] == "tenant.eu.auth0.com"
    assert os.environ["AUTH0_AUDIENCE"] == "https://exported"


def test_the_auth0_example_without_dotenv_file_reads_nothing(in_tmp_dir: Path) -> None:
    assert load("fastapi_mcp_migration").read_dotenv() is False


def test_the_auth0_example_says_so_when_it_cannot_read_dotenv(
    in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    (in_tmp_dir / ".env").write_text("AUTH0_DOMAIN=tenant.eu.auth0.com\n")
    monkeypatch.setitem(sys.modules, "dotenv", None)  # python-dotenv not installed
    assert load("fastapi_mcp_migration").read_dotenv() is False
    assert "pip install python-dotenv" in capsys.readouterr().err
    assert "AUTH0_DOMAIN" not in os.environ


@pytest.mark.parametrize(
    ("env", "port"),
    [
        ({"MCP_OAUTH_SHIM_PUBLIC_URL": "http://127.0.0.1:8825"}, 8825),
        ({"MCP_OAUTH_SHIM_PUBLIC_URL": "http://127.0.0.1:8825", "MCP_OAUTH_SHIM_PORT": "9000"}, 9000),
        ({"MCP_OAUTH_SHIM_PUBLIC_URL": "https://api.example.com"}, 8000),
        ({}, 8000),
    ],
)
def test_the_auth0_example_listens_where_its_public_url_says(env: dict[str, str], port: int) -> None:
    assert load("fastapi_mcp_migration").listen_port(env) == port


def test_the_examples_name_their_variables_as_the_command_line_does() -> None:
    """One environment configures `mcp-oauth-shim serve` and every example alike."""
    import re

    from mcp_oauth_shim.cli import SERVE_OPTIONS

    known = {option.env for option in SERVE_OPTIONS}
    for path in sorted(EXAMPLES.glob("*.py")):
        text = path.read_text()
        assert not re.search(r"(?<![A-Z_])(UPSTREAM_[A-Z_]+|SHIM_SECRET_KEYS)\b", text), path.name
        unknown = set(re.findall(r"MCP_OAUTH_SHIM_[A-Z_]+", text)) - known
        assert not unknown, f"{path.name}: {sorted(unknown)} is not a variable of mcp-oauth-shim serve"

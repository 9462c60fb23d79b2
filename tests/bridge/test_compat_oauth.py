"""`mcp_bridge.compat` with OAuth: FastAPI-MCP's Auth0 example and its custom-metadata example,
written as its docs show them, on the shim.

The IdP is the shim's development IdP (Auth0-like: `audience=`, no open registration, exact
callback), served under uvicorn on loopback; the client is the mcp SDK's `OAuthClientProvider`
with a headless user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio
import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, status

from mcp_bridge.compat import ENV_PUBLIC_URL, ENV_SECRET_KEYS, AuthConfig, FastApiMCP
from mcp_oauth_shim import ConfigurationError
from mcp_oauth_shim.dev_idp import DevIdP
from tests.bridge.test_compat_kit import json_of, mcp_session
from tests.bridge.token_issuer import TokenIssuer
from tests.peers.browser import approval_submission, new_browser_client
from tests.peers.clients import sdk_oauth_client
from tests.peers.servers import bind_loopback, serve_asgi

AUDIENCE = "https://items.example/api"  # an Auth0 API identifier, not a URL of this server
SIGNING_KEY = "compat-test-signing-key-" + "x" * 32
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass(frozen=True)
class Settings:
    """What FastAPI-MCP's Auth0 example reads from its .env file."""

    issuer: str
    audience: str
    client_id: str
    client_secret: str
    # Auth0's paths; another IdP names its own.
    authorize_path: str = "/authorize"
    jwks_path: str = "/.well-known/jwks.json"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}{self.jwks_path}"

    @property
    def oauth_metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def auth0_example_app(settings: Settings, **auth_overrides: Any) -> FastAPI:
    """FastAPI-MCP's Auth0 example (its docs' "OAuth Flow"), with only the import changed."""
    jwks = jwt.PyJWKClient(settings.jwks_url)

    def verify_auth(request: Request) -> dict[str, Any]:
        try:
            auth_header = request.headers.get("authorization", "")
            if not auth_header.startswith("Bearer "):
                raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Invalid authorization header")
            token = auth_header.split(" ")[1]
            return jwt.decode(
                token,
                jwks.get_signing_key_from_jwt(token).key,
                algorithms=["RS256"],
                audience=settings.audience,
                issuer=settings.issuer,
            )
        except HTTPException:
            raise
        except Exception:
            pass
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Unauthorized")

    def get_current_user_id(claims: dict = Depends(verify_auth)) -> str:  # type: ignore[type-arg]
        user_id = claims.get("sub")
        if not user_id:
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Unauthorized")
        return user_id

    app = FastAPI()

    @app.get("/api/public", operation_id="public")
    async def public() -> dict[str, str]:
        return {"message": "This is a public route"}

    @app.get("/api/protected", operation_id="protected")
    async def protected(user_id: str = Depends(get_current_user_id)) -> dict[str, str]:
        return {"message": f"Hello, {user_id}!", "user_id": user_id}

    config: dict[str, Any] = dict(
        issuer=settings.issuer,
        authorize_url=f"{settings.issuer}{settings.authorize_path}",
        oauth_metadata_url=settings.oauth_metadata_url,
        audience=settings.audience,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        dependencies=[Depends(verify_auth)],
        setup_proxies=True,
    )
    mcp = FastApiMCP(
        app,
        name="MCP With Auth0",
        description="Example of FastAPI-MCP with Auth0 authentication",
        auth_config=AuthConfig(**{**config, **auth_overrides}),
    )
    mcp.mount_http()
    return app


@dataclass(frozen=True)
class Deployment:
    url: str
    idp: DevIdP
    settings: Settings

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"


@contextlib.contextmanager
def deployed(build: Callable[[Settings], FastAPI] | None = None, **auth_overrides: Any) -> Iterator[Deployment]:
    """An app (default: the Auth0 example) and the IdP on loopback; the public URL and the
    signing key come from the environment, as in a deployment."""
    app_sock, idp_sock = bind_loopback(), bind_loopback()
    public_url = f"http://127.0.0.1:{app_sock.getsockname()[1]}"
    idp_url = f"http://127.0.0.1:{idp_sock.getsockname()[1]}"
    idp = DevIdP(
        issuer=idp_url, redirect_uris=[public_url + "/oauth/callback"], auto_approve=True, audiences=[AUDIENCE]
    )
    settings = Settings(issuer=idp_url, audience=AUDIENCE, client_id=idp.client_id, client_secret=idp.client_secret)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_PUBLIC_URL, public_url)
        env.setenv(ENV_SECRET_KEYS, SIGNING_KEY)
        app = build(settings) if build is not None else auth0_example_app(settings, **auth_overrides)
    with serve_asgi(idp.app, idp_sock), serve_asgi(app, app_sock) as running:
        yield Deployment(url=running.url, idp=idp, settings=settings)


@pytest.fixture(scope="module")
def auth0() -> Iterator[Deployment]:
    with deployed() as deployment:
        yield deployment


def register(deployment: Deployment, redirect_uri: str = "http://127.0.0.1:53682/callback") -> httpx.Response:
    body = {"redirect_uris": [redirect_uri], "client_name": "compat test", "token_endpoint_auth_method": "none"}
    return httpx.post(deployment.url + "/oauth/register", json=body, timeout=10)


def log_in_and_call_protected(deployment: Deployment) -> tuple[set[str], Any, int]:
    """The mcp SDK's OAuth client with a headless user: tool names, `protected`'s answer, logins."""
    client = sdk_oauth_client(deployment.mcp, client_name="compat Auth0 example")

    async def scenario() -> tuple[set[str], Any]:
        with anyio.fail_after(120):
            async with mcp_session(deployment.mcp, auth=client.provider) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                return names, json_of(await session.call_tool("protected", {}))

    names, greeting = anyio.run(scenario)
    return names, greeting, client.user.logins


def test_mcp_sdk_client_logs_in_and_calls_the_protected_route(auth0: Deployment) -> None:
    names, greeting, logins = log_in_and_call_protected(auth0)
    assert names == {"public", "protected"}
    assert greeting["message"].startswith("Hello, ") and greeting["user_id"]
    assert logins == 1


def load_migration_example() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "examples" / "fastapi_mcp_migration.py"
    spec = importlib.util.spec_from_file_location("example_fastapi_mcp_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_example_logs_in_and_calls_the_protected_route() -> None:
    example = load_migration_example()

    def build(settings: Settings) -> FastAPI:
        return example.build_app(
            issuer=settings.issuer,
            authorize_url=settings.issuer + settings.authorize_path,
            oauth_metadata_url=settings.oauth_metadata_url,
            jwks_url=settings.jwks_url,
            audience=settings.audience,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )

    with deployed(build) as deployment:
        names, greeting, logins = log_in_and_call_protected(deployment)
    assert names == {"public", "protected"}
    assert greeting["user_id"] and logins == 1


def test_endpoint_without_token_gets_401_naming_the_resource_metadata(auth0: Deployment) -> None:
    response = httpx.post(auth0.mcp, json=INIT, headers=MCP_HEADERS, timeout=10)
    assert response.status_code == 401
    assert f'resource_metadata="{auth0.url}/.well-known/oauth-protected-resource/mcp"' in response.headers[
        "www-authenticate"
    ]


def test_metadata_names_this_server_as_the_issuer(auth0: Deployment) -> None:
    prm = httpx.get(auth0.url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    meta = httpx.get(auth0.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert (prm["resource"], prm["authorization_servers"]) == (auth0.mcp, [auth0.url])
    assert meta["issuer"] == auth0.url
    endpoints = [meta["authorization_endpoint"], meta["token_endpoint"], meta["registration_endpoint"]]
    assert all(urlsplit(endpoint).netloc == urlsplit(auth0.url).netloc for endpoint in endpoints)
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_registration_never_returns_the_client_secret(auth0: Deployment) -> None:
    response = register(auth0)
    assert response.status_code == 201
    answer = response.json()
    assert auth0.settings.client_secret not in response.text
    assert "client_secret" not in answer
    assert answer["token_endpoint_auth_method"] == "none"
    assert answer["client_id"] != auth0.settings.client_id  # signed, carrying its redirect URIs


@pytest.mark.parametrize(
    "redirect_uri",
    ["javascript:alert(1)", "http://attacker.example/cb", "https://app.example/cb#fragment", "https://user@app.example/cb"],
    ids=["javascript", "plain-http-remote", "fragment", "userinfo"],
)
def test_registration_refuses_unsafe_redirect_uris(auth0: Deployment, redirect_uri: str) -> None:
    response = register(auth0, redirect_uri)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


def test_authorize_refuses_a_redirect_uri_the_client_did_not_register(auth0: Deployment) -> None:
    client_id = register(auth0).json()["client_id"]
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://attacker.example/steal",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
    }
    response = httpx.get(auth0.url + "/oauth/authorize", params=params, timeout=10)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_metadata_path_serves_the_metadata_there_too() -> None:
    with deployed(metadata_path="/auth/metadata") as deployment:
        custom = httpx.get(deployment.url + "/auth/metadata", timeout=10)
        standard = httpx.get(deployment.url + "/.well-known/oauth-authorization-server", timeout=10)
    assert custom.status_code == 200 and custom.json() == standard.json()


def test_static_registration_hands_out_the_idp_client_id_but_never_its_secret() -> None:
    allowed = "http://127.0.0.1:8080/oauth/callback"  # mcp-remote on its fixed port, as FastAPI-MCP's docs say
    with deployed(setup_fake_dynamic_registration=False, allowed_redirect_uris=[allowed]) as deployment:
        accepted = register(deployment, allowed)
        refused = register(deployment, "https://elsewhere.example/cb")
    assert accepted.status_code == 201
    assert accepted.json()["client_id"] == deployment.settings.client_id
    assert deployment.settings.client_secret not in accepted.text
    assert refused.status_code == 400


# -- custom_oauth_metadata --------------------------------------------------------------------

DOCS_METADATA = {
    "issuer": "https://auth.example.com",
    "authorization_endpoint": "https://auth.example.com/authorize",
    "token_endpoint": "https://auth.example.com/token",
    "registration_endpoint": "https://auth.example.com/register",
    "scopes_supported": ["openid", "profile", "email"],
    "response_types_supported": ["code"],
    "grant_types_supported": ["authorization_code"],
    "token_endpoint_auth_methods_supported": ["none"],
    "code_challenge_methods_supported": ["S256"],
}


def custom_metadata_app(metadata: dict[str, Any], *, with_dependency: bool = True, **auth: Any) -> FastAPI:
    """FastAPI-MCP's "Custom OAuth Metadata" docs example (the dependency accepts one token)."""
    app = FastAPI()

    @app.get("/hello", operation_id="hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    async def verify_auth(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer accepted":
            raise HTTPException(status_code=401, detail="Unauthorized")

    mcp = FastApiMCP(
        app,
        name="MCP With Custom OAuth",
        auth_config=AuthConfig(
            custom_oauth_metadata=metadata, dependencies=[Depends(verify_auth)] if with_dependency else None, **auth
        ),
    )
    mcp.mount_http()
    return app


@contextlib.contextmanager
def served_with_public_url(build: Any) -> Iterator[str]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_PUBLIC_URL, url)
        app = build()
    with serve_asgi(app, sock):
        yield url


def test_custom_metadata_is_served_as_given_with_resource_metadata_pointing_at_it() -> None:
    with served_with_public_url(lambda: custom_metadata_app(DOCS_METADATA)) as url:
        meta = httpx.get(url + "/.well-known/oauth-authorization-server", timeout=10).json()
        prm = httpx.get(url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        register = httpx.post(url + "/oauth/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]}, timeout=10)
    assert meta == DOCS_METADATA
    assert prm["authorization_servers"] == ["https://auth.example.com"]
    assert register.status_code in (404, 405)  # no OAuth endpoints of ours in this mode


@pytest.mark.anyio
async def test_custom_metadata_endpoint_is_guarded_by_the_dependencies() -> None:
    with served_with_public_url(lambda: custom_metadata_app(DOCS_METADATA)) as url:
        refused = httpx.post(url + "/mcp", json=INIT, headers=MCP_HEADERS, timeout=10)
        async with mcp_session(url + "/mcp", token="accepted") as session:
            hello = json_of(await session.call_tool("hello", {}))
    assert refused.status_code == 401
    assert f'resource_metadata="{url}/.well-known/oauth-protected-resource/mcp"' in refused.headers["www-authenticate"]
    assert hello == {"hello": "world"}


@contextlib.contextmanager
def custom_metadata_with_keys(**auth: Any) -> Iterator[tuple[str, TokenIssuer]]:
    """Custom metadata naming a `jwks_uri` (an authorization server served on loopback)."""
    as_sock = bind_loopback()
    issuer = TokenIssuer(issuer=f"http://127.0.0.1:{as_sock.getsockname()[1]}")
    metadata = {
        "issuer": issuer.issuer,
        "authorization_endpoint": issuer.issuer + "/authorize",
        "token_endpoint": issuer.issuer + "/token",
        "jwks_uri": issuer.issuer + "/jwks",
        "grant_types_supported": ["authorization_code"],
    }
    with serve_asgi(issuer.app, as_sock):
        with served_with_public_url(lambda: custom_metadata_app(metadata, with_dependency=False, **auth)) as url:
            yield url, issuer


@pytest.mark.parametrize(
    ("audience", "config_audience", "expected"),
    [
        pytest.param("{url}/mcp", None, 200, id="aud-is-the-resource"),
        pytest.param("https://other.example/api", None, 401, id="foreign-aud"),
        pytest.param(AUDIENCE, AUDIENCE, 200, id="aud-is-the-configured-audience"),
    ],
)
def test_custom_metadata_with_jwks_uri_verifies_tokens(
    audience: str, config_audience: str | None, expected: int
) -> None:
    auth = {"audience": config_audience} if config_audience else {}
    with custom_metadata_with_keys(**auth) as (url, issuer):
        token = issuer.token(audience=audience.format(url=url))
        response = httpx.post(url + "/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"})
    assert response.status_code == expected
    if expected == 401:
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_oauth_json_answers_carry_no_upstream_secret(auth0: Deployment) -> None:
    bodies = [
        httpx.get(auth0.url + path, timeout=10).text
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp")
    ]
    bodies.append(register(auth0).text)
    assert not any(auth0.settings.client_secret in body for body in bodies)
    assert all(json.loads(body) for body in bodies)


# -- one resource per FastApiMCP -----------------------------------------------------------------


def proxied_config(**extra: Any) -> AuthConfig:
    # Building the shim contacts nobody: discovery happens at the first login.
    return AuthConfig(
        issuer="https://tenant.example.com/", client_id="c", client_secret="s", setup_proxies=True, **extra
    )


def test_a_second_mount_outside_the_oauth_resource_is_refused() -> None:
    mcp = FastApiMCP(FastAPI(), auth_config=proxied_config(), public_url="http://127.0.0.1:8000")
    mcp.mount_http()
    with pytest.raises(ConfigurationError, match="resource"):
        mcp.mount_sse()


def test_a_common_resource_covers_every_mount() -> None:
    app = FastAPI()
    mcp = FastApiMCP(app, auth_config=proxied_config(resource="http://127.0.0.1:8000"), public_url="http://127.0.0.1:8000")
    mcp.mount_http()
    mcp.mount_sse()
    assert mcp.shim is not None and mcp.shim.resource == "http://127.0.0.1:8000"


def test_two_oauth_servers_on_one_app_share_the_resource_and_both_log_in() -> None:
    def build(settings: Settings) -> FastAPI:
        app = auth0_example_app(settings, resource=os.environ[ENV_PUBLIC_URL])  # mounts /mcp
        second = FastApiMCP(
            app,
            name="public only",
            include_operations=["public"],
            auth_config=AuthConfig(
                issuer=settings.issuer,
                oauth_metadata_url=settings.oauth_metadata_url,
                audience=settings.audience,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                setup_proxies=True,
                resource=os.environ[ENV_PUBLIC_URL],
            ),
        )
        second.mount_http(mount_path="/public-mcp")
        return app

    with deployed(build) as deployment:
        client = sdk_oauth_client(deployment.url + "/public-mcp")

        async def scenario() -> set[str]:
            with anyio.fail_after(120):
                async with mcp_session(deployment.url + "/public-mcp", auth=client.provider) as session:
                    return {tool.name for tool in (await session.list_tools()).tools}

        names = anyio.run(scenario)
    assert names == {"public"}


def test_authorize_url_is_where_the_user_is_sent_after_consent() -> None:
    def build(settings: Settings) -> FastAPI:
        return auth0_example_app(dataclasses.replace(settings, authorize_path="/alternate/authorize"))

    redirect_uri = "http://127.0.0.1:53682/callback"
    with deployed(build) as deployment, new_browser_client() as browser:
        client_id = register(deployment, redirect_uri).json()["client_id"]
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "s",
            "resource": deployment.mcp,
        }
        page = browser.get(deployment.url + "/oauth/authorize", params=params)
        action, fields = approval_submission(page.text, str(page.url))
        form = {"content-type": "application/x-www-form-urlencoded"}
        approved = browser.post(action, content=urlencode(fields), headers=form)
    location = approved.headers["location"]
    assert location.startswith(deployment.settings.issuer + "/alternate/authorize?")
    assert f"audience={quote(AUDIENCE, safe='')}" in location


@pytest.mark.parametrize(("configured", "warned"), [(False, True), (True, False)], ids=["generated", "from-env"])
def test_a_generated_signing_key_is_announced_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, configured: bool, warned: bool
) -> None:
    monkeypatch.delenv(ENV_SECRET_KEYS, raising=False)
    if configured:
        monkeypatch.setenv(ENV_SECRET_KEYS, SIGNING_KEY)
    with caplog.at_level(logging.WARNING, logger="mcp_bridge.compat"):
        FastApiMCP(FastAPI(), auth_config=proxied_config(), public_url="http://127.0.0.1:8000").mount_http()
    assert any(ENV_SECRET_KEYS in record.getMessage() for record in caplog.records) is warned

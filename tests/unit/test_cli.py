"""The command line: flags and variables, redaction, `serve` app construction, the MCP reverse
proxy behind `serve --mcp-upstream`, and `doctor` against fake identity providers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_oauth_shim import cli
from mcp_oauth_shim.cli import SERVE_OPTIONS, UsageError, build_app, build_shim, parser, resolve, serve_settings
from mcp_oauth_shim.doctor import DoctorInput, diagnose
from mcp_oauth_shim.mcp_proxy import MCPReverseProxy

SECRET = "s3cr3t-upstream-client-secret-value"
KEY1 = "signing-key-one-" + "k" * 40
KEY2 = "signing-key-two-" + "q" * 40
ISSUER = "https://idp.example"

BASE_ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": ISSUER,
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET,
    "MCP_OAUTH_SHIM_SECRET_KEYS": f"{KEY1},{KEY2}",
}


def run_main(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, environ=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def settings_for(argv: list[str], env: dict[str, str]) -> cli.Settings:
    return serve_settings(parser().parse_args(["serve", *argv]), env)


# --- flags, variables, defaults ----------------------------------------------------------------


def test_help_lists_every_flag_with_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in SERVE_OPTIONS:
        assert option.flag in text
        assert option.env in text


def test_doctor_help_names_the_shared_issuer_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["doctor", "--help"])
    text = capsys.readouterr().out
    assert "--issuer" in text and "MCP_OAUTH_SHIM_UPSTREAM_ISSUER" in text


@pytest.mark.parametrize(
    ("argv", "env", "name", "value", "source"),
    [
        (["--port", "9000"], {"MCP_OAUTH_SHIM_PORT": "7000"}, "port", 9000, "flag"),
        ([], {"MCP_OAUTH_SHIM_PORT": "7000"}, "port", 7000, "env MCP_OAUTH_SHIM_PORT"),
        ([], {}, "port", 8000, "default"),
        ([], {"MCP_OAUTH_SHIM_PORT": ""}, "port", 8000, "default"),
        ([], {}, "host", "127.0.0.1", "default"),
        (["--scopes", "openid profile"], {}, "scopes", ("openid", "profile"), "flag"),
        ([], {"MCP_OAUTH_SHIM_SCOPES": "openid,email, profile"}, "scopes", ("openid", "email", "profile"), "env MCP_OAUTH_SHIM_SCOPES"),
        ([], {"MCP_OAUTH_SHIM_EXTRA_SCOPES": "offline_access"}, "extra_scopes", ("offline_access",), "env MCP_OAUTH_SHIM_EXTRA_SCOPES"),
        ([], {"MCP_OAUTH_SHIM_SECRET_KEYS": " a , b ,"}, "secret_keys", ("a", "b"), "env MCP_OAUTH_SHIM_SECRET_KEYS"),
        (["--audience-param", "audience"], {"MCP_OAUTH_SHIM_AUDIENCE_PARAM": "none"}, "audience_param", "audience", "flag"),
        ([], {"MCP_OAUTH_SHIM_AUDIENCE_PARAM": "none"}, "audience_param", "none", "env MCP_OAUTH_SHIM_AUDIENCE_PARAM"),
        (["--no-client-metadata-documents"], {}, "client_metadata_documents", False, "flag"),
        ([], {"MCP_OAUTH_SHIM_CLIENT_METADATA_DOCUMENTS": "off"}, "client_metadata_documents", False, "env MCP_OAUTH_SHIM_CLIENT_METADATA_DOCUMENTS"),
        ([], {"MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION": "yes"}, "forward_authorization", True, "env MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION"),
        (["--forward-authorization"], {"MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION": "false"}, "forward_authorization", True, "flag"),
    ],
)
def test_flag_wins_over_variable_wins_over_default(
    argv: list[str], env: dict[str, str], name: str, value: object, source: str
) -> None:
    settings = resolve(SERVE_OPTIONS, parser().parse_args(["serve", *argv]), env)
    assert settings.values[name] == value
    assert settings.sources[name] == source


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MCP_OAUTH_SHIM_PORT": "eighty"}, "must be a number"),
        ({"MCP_OAUTH_SHIM_CLIENT_METADATA_DOCUMENTS": "maybe"}, "true or false"),
        ({"MCP_OAUTH_SHIM_AUDIENCE_PARAM": "header"}, "must be one of"),
        ({"MCP_OAUTH_SHIM_TOKEN_AUTH_METHOD": "private_key_jwt"}, "must be one of"),
    ],
)
def test_malformed_variables_are_usage_errors(env: dict[str, str], fragment: str) -> None:
    code, _, err = run_main(["serve", "--check"], {**BASE_ENV, **env})
    assert code == 2
    assert fragment in err


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "--upstream-issuer / MCP_OAUTH_SHIM_UPSTREAM_ISSUER"),
        ("MCP_OAUTH_SHIM_CLIENT_ID", "--client-id / MCP_OAUTH_SHIM_CLIENT_ID"),
        ("MCP_OAUTH_SHIM_CLIENT_SECRET", "--client-secret / MCP_OAUTH_SHIM_CLIENT_SECRET"),
        ("MCP_OAUTH_SHIM_SECRET_KEYS", "--secret-keys / MCP_OAUTH_SHIM_SECRET_KEYS"),
    ],
)
def test_missing_required_setting_names_flag_and_variable(missing: str, named: str) -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != missing}
    code, out, err = run_main(["serve", "--check"], env)
    assert code == 2
    assert named in err
    assert out == ""


def test_metadata_url_replaces_the_issuer() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != "MCP_OAUTH_SHIM_UPSTREAM_ISSUER"}
    env["MCP_OAUTH_SHIM_UPSTREAM_METADATA_URL"] = ISSUER + "/.well-known/openid-configuration"
    assert run_main(["serve", "--check"], env)[0] == 0


def test_public_url_is_derived_on_loopback() -> None:
    settings = settings_for(["--port", "8123"], BASE_ENV)
    assert settings.values["public_url"] == "http://127.0.0.1:8123"


def test_public_url_is_required_off_loopback() -> None:
    with pytest.raises(UsageError, match="--public-url"):
        settings_for(["--host", "0.0.0.0"], BASE_ENV)


def test_configuration_errors_exit_2_with_the_reason() -> None:
    code, _, err = run_main(["serve", "--check", "--public-url", "http://api.example.com"], BASE_ENV)
    assert code == 2
    assert "https" in err


# --- redaction ---------------------------------------------------------------------------------


def test_serve_prints_configuration_without_secrets() -> None:
    code, out, err = run_main(["serve", "--check", "--audience", "https://api.example/mcp"], BASE_ENV)
    assert code == 0
    assert "client-secret              <redacted>" in out
    assert "<redacted> (2 keys)" in out
    assert "https://api.example/mcp" in out
    assert "http://127.0.0.1:8000/oauth/callback" in out
    for secret in (SECRET, KEY1, KEY2, SECRET[:8], KEY1[-12:]):
        assert secret not in out + err


def test_secret_given_as_flag_is_redacted_and_warned_about() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != "MCP_OAUTH_SHIM_CLIENT_SECRET"}
    code, out, err = run_main(["serve", "--check", "--client-secret", SECRET, "--secret-keys", KEY1], env)
    assert code == 0
    assert SECRET not in out + err and KEY1 not in out + err
    assert "visible in the process list" in out


# --- serve: building the shim and the app ----------------------------------------------------


def test_build_shim_carries_the_settings() -> None:
    settings = settings_for(
        [
            "--public-url",
            "https://api.example.com",
            "--audience",
            "https://api.example.com/mcp",
            "--audience-param",
            "audience",
            "--scopes",
            "openid profile",
            "--extra-scopes",
            "offline_access",
            "--token-auth-method",
            "client_secret_basic",
        ],
        BASE_ENV,
    )
    shim = build_shim(settings)
    assert shim.issuer == "https://api.example.com"
    assert shim.resource == "https://api.example.com/mcp"
    up = shim.upstream
    assert (up.issuer, up.client_id, up.client_secret) == (ISSUER, "shim-client", SECRET)
    assert up.metadata_url == ISSUER + "/.well-known/openid-configuration"
    assert (up.audience, up.audience_param) == ("https://api.example.com/mcp", "audience")
    assert up.default_scopes == ("openid", "profile")
    assert up.extra_scopes == ("offline_access",)
    assert up.token_auth_method == "client_secret_basic"


async def _get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        return await client.get(path, **kwargs)


def test_serve_app_serves_protected_resource_metadata() -> None:
    settings = settings_for([], BASE_ENV)
    app = build_app(settings, build_shim(settings))
    response = asyncio.run(_get(app, "/.well-known/oauth-protected-resource/mcp"))
    assert response.status_code == 200
    assert response.json()["resource"] == "http://127.0.0.1:8000/mcp"
    assert response.json()["authorization_servers"] == ["http://127.0.0.1:8000"]


def test_serve_without_mcp_upstream_has_no_mcp_route() -> None:
    settings = settings_for([], BASE_ENV)
    app = build_app(settings, build_shim(settings))
    assert asyncio.run(_get(app, "/mcp")).status_code == 404


@pytest.mark.parametrize("path", ["/mcp", "/mcp/", "/mcp/messages"])
def test_mcp_upstream_is_behind_the_bearer_check(path: str) -> None:
    settings = settings_for(["--mcp-upstream", "http://127.0.0.1:9/mcp"], BASE_ENV)
    app = build_app(settings, build_shim(settings))
    response = asyncio.run(_get(app, path))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"' in challenge


def test_mcp_upstream_needs_resource_on_the_public_origin() -> None:
    settings = settings_for(
        ["--mcp-upstream", "http://127.0.0.1:9/mcp", "--resource", "http://localhost:9999/mcp"], BASE_ENV
    )
    with pytest.raises(UsageError, match="same origin"):
        build_app(settings, build_shim(settings))


@pytest.mark.parametrize("argv", [[], ["--mcp-upstream", "http://127.0.0.1:9/mcp"]])
def test_serve_app_runs_under_uvicorn_on_an_ephemeral_port(argv: list[str]) -> None:
    import uvicorn

    settings = settings_for(argv, BASE_ENV)
    app = build_app(settings, build_shim(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.02)
            assert thread.is_alive(), "uvicorn exited during startup"
        port = server.servers[0].sockets[0].getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp", timeout=10)
        assert response.status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


# --- the MCP reverse proxy ---------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """A stand-in MCP server: echoes what it received; /mcp/sse streams two events."""

    server: _UpstreamServer
    protocol_version = "HTTP/1.1"

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body})
        return body

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._record()
        answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"echo": body.decode()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Mcp-Session-Id", "session-123")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("X-Private-Hop", "1")
        self.send_header("Connection", "X-Private-Hop")
        self.end_headers()
        self.wfile.write(answer)

    def do_DELETE(self) -> None:  # noqa: N802
        self._record()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"event: message\ndata: one\n\n")
        self.wfile.flush()
        self.server.release.wait(30)
        with contextlib.suppress(OSError):
            self.wfile.write(b"event: message\ndata: two\n\n")
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Upstream)
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()


@pytest.fixture
def mcp_server() -> Iterator[_UpstreamServer]:
    server = _UpstreamServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _proxy(server: _UpstreamServer, **kwargs: Any) -> MCPReverseProxy:
    return MCPReverseProxy(f"http://127.0.0.1:{server.server_port}/mcp", mount_path="/mcp", **kwargs)


async def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.example.com") as client:
        response = await client.request(method, path, **kwargs)
    await app.aclose()
    return response


CLIENT_HEADERS = {
    "Authorization": "Bearer user-access-token",
    "Cookie": "__Host-shim_binding=abc",
    "Connection": "keep-alive, X-Client-Hop",
    "X-Client-Hop": "drop me",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
    "Mcp-Session-Id": "session-123",
    "Mcp-Protocol-Version": "2025-11-25",
    "Accept": "application/json, text/event-stream",
    "X-Forwarded-For": "6.6.6.6",
}


def _with_session(proxy: MCPReverseProxy) -> dict[str, str]:
    """CLIENT_HEADERS carrying the id the proxy handed out for the server's session-123 (the
    request has no verified user, so the session belongs to nobody in particular)."""
    return {**CLIENT_HEADERS, "Mcp-Session-Id": proxy.seal_session_id("session-123", owner="")}


def test_proxy_forwards_end_to_end_headers_and_drops_the_rest(mcp_server: _UpstreamServer) -> None:
    proxy = _proxy(mcp_server)
    response = asyncio.run(_call(proxy, "POST", "/mcp", headers=_with_session(proxy), content=b'{"a":1}'))
    assert response.status_code == 200
    seen = {k.lower(): v for k, v in mcp_server.seen[0]["headers"].items()}
    assert seen["mcp-session-id"] == "session-123"
    assert seen["mcp-protocol-version"] == "2025-11-25"
    assert seen["accept"] == "application/json, text/event-stream"
    assert seen["host"] == f"127.0.0.1:{mcp_server.server_port}"
    assert seen["x-forwarded-host"] == "api.example.com"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-for"] != "6.6.6.6"
    for dropped in ("authorization", "cookie", "x-client-hop", "te", "proxy-authorization"):
        assert dropped not in seen
    assert mcp_server.seen[0]["body"] == b'{"a":1}'


def test_proxy_forwards_authorization_when_asked(mcp_server: _UpstreamServer) -> None:
    proxy = _proxy(mcp_server, forward_authorization=True)
    asyncio.run(_call(proxy, "POST", "/mcp", headers=_with_session(proxy)))
    seen = {k.lower(): v for k, v in mcp_server.seen[0]["headers"].items()}
    assert seen["authorization"] == "Bearer user-access-token"


def test_proxy_returns_session_id_and_drops_hop_by_hop_response_headers(mcp_server: _UpstreamServer) -> None:
    proxy = _proxy(mcp_server)
    response = asyncio.run(_call(proxy, "POST", "/mcp", content=b"{}"))
    # The server's id, sealed for the caller (here: no verified user) by the proxy.
    assert proxy.open_session_id(response.headers["mcp-session-id"], owner="") == "session-123"
    assert "keep-alive" not in response.headers
    assert "x-private-hop" not in response.headers
    assert response.json()["result"]["echo"] == "{}"


@pytest.mark.parametrize(
    ("method", "path", "upstream_path"),
    [
        ("POST", "/mcp", "/mcp"),
        ("POST", "/mcp?x=1&y=%20", "/mcp?x=1&y=%20"),
        # (A legacy `session_id` in the query passes only sealed: tests/shim/test_mcp_proxy_legacy_sse.py.)
        ("POST", "/mcp/messages?client=9", "/mcp/messages?client=9"),
        ("DELETE", "/mcp", "/mcp"),
    ],
)
def test_proxy_maps_paths_and_methods(mcp_server: _UpstreamServer, method: str, path: str, upstream_path: str) -> None:
    asyncio.run(_call(_proxy(mcp_server), method, path))
    assert (mcp_server.seen[0]["method"], mcp_server.seen[0]["path"]) == (method, upstream_path)


def test_proxy_refuses_oversized_bodies(mcp_server: _UpstreamServer) -> None:
    response = asyncio.run(_call(_proxy(mcp_server, max_body_bytes=10), "POST", "/mcp", content=b"x" * 11))
    assert response.status_code == 413
    assert mcp_server.seen == []


def test_proxy_answers_502_when_the_mcp_server_is_down() -> None:
    proxy = MCPReverseProxy("http://127.0.0.1:9/mcp", mount_path="/mcp")
    response = asyncio.run(_call(proxy, "POST", "/mcp", content=b"{}"))
    assert response.status_code == 502
    assert response.json()["error"] == "temporarily_unavailable"


def test_proxy_streams_server_sent_events_as_they_arrive(mcp_server: _UpstreamServer) -> None:
    """The first event reaches the client while the MCP server still holds the stream open."""
    proxy = _proxy(mcp_server)

    async def run() -> list[dict[str, Any]]:
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        disconnect = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await sent.put(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/mcp/sse",
            "query_string": b"",
            "headers": [(b"accept", b"text/event-stream"), (b"host", b"api.example.com")],
            "scheme": "https",
            "client": ("203.0.113.9", 5000),
        }
        call = asyncio.create_task(proxy(scope, receive, send))
        start = await asyncio.wait_for(sent.get(), 20)
        first = await asyncio.wait_for(sent.get(), 20)
        still_open = not mcp_server.release.is_set() and not call.done()
        disconnect.set()  # the client goes away: the proxy must end without the second event
        await asyncio.wait_for(call, 20)
        await proxy.aclose()
        assert still_open
        return [start, first]

    start, first = asyncio.run(run())
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"] == b"text/event-stream"
    assert first["body"] == b"event: message\ndata: one\n\n"
    assert first["more_body"] is True


# --- doctor ------------------------------------------------------------------------------------

GOOD_DISCOVERY: dict[str, Any] = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/authorize",
    "token_endpoint": ISSUER + "/oauth/token",
    "jwks_uri": ISSUER + "/.well-known/jwks.json",
    "revocation_endpoint": ISSUER + "/oauth/revoke",
    "response_types_supported": ["code", "id_token"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "code_challenge_methods_supported": ["S256", "plain"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "scopes_supported": ["openid", "profile", "offline_access"],
}
RSA_JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "sXch", "e": "AQAB", "alg": "RS256", "use": "sig"}]}


class FakeIdP:
    """Answers discovery, JWKS, /authorize and /oauth/token like a configurable IdP."""

    def __init__(
        self,
        discovery: dict[str, Any] | None = None,
        *,
        jwks: dict[str, Any] | None = None,
        oidc_discovery: bool = True,
        authorize: Callable[[httpx.Request], httpx.Response] | None = None,
        token_error: str = "invalid_grant",
    ) -> None:
        self.discovery = GOOD_DISCOVERY if discovery is None else discovery
        self.jwks = RSA_JWKS if jwks is None else jwks
        self.oidc_discovery = oidc_discovery
        self.authorize = authorize or (lambda request: httpx.Response(302, headers={"location": ISSUER + "/u/login"}))
        self.token_error = token_error
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/.well-known/openid-configuration" and self.oidc_discovery:
            return httpx.Response(200, json=self.discovery)
        if path == "/.well-known/oauth-authorization-server" and not self.oidc_discovery:
            return httpx.Response(200, json=self.discovery)
        if path == "/.well-known/jwks.json":
            return httpx.Response(200, json=self.jwks)
        if path == "/authorize":
            return self.authorize(request)
        if path == "/oauth/token":
            status = 401 if self.token_error == "invalid_client" else 400
            return httpx.Response(status, json={"error": self.token_error})
        return httpx.Response(404, text="not found")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def run_doctor(idp: FakeIdP, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    args = parser().parse_args(["doctor", *argv])
    code = cli.doctor(args, env or {}, out, http=idp.client())
    return code, out.getvalue()


def levels(output: str) -> dict[str, set[str]]:
    """check name -> the levels reported for it."""
    found: dict[str, set[str]] = {}
    for line in output.splitlines():
        level, _, rest = line.partition(" ")
        if level in ("OK", "INFO", "WARN", "FAIL"):
            found.setdefault(rest.strip().split(":", 1)[0], set()).add(level)
    return found


FULL_ARGS = ["--issuer", ISSUER, "--client-id", "shim-client", "--extra-scopes", "offline_access"]


def test_doctor_passes_a_good_idp() -> None:
    code, out = run_doctor(FakeIdP(), FULL_ARGS, {"MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET})
    assert code == 0, out
    found = levels(out)
    assert not any("FAIL" in lv or "WARN" in lv for lv in found.values()), out
    for check in ("issuer", "PKCE", "jwks_uri", "refresh tokens", "revocation_endpoint", "client credentials", "authorization request"):
        assert found[check] == {"OK"}, check


def test_doctor_reads_the_issuer_from_the_serve_variable() -> None:
    code, out = run_doctor(FakeIdP(), [], {"MCP_OAUTH_SHIM_UPSTREAM_ISSUER": ISSUER})
    assert code == 0, out
    assert f"read {ISSUER}/.well-known/openid-configuration" in out


def test_doctor_without_issuer_is_a_usage_error() -> None:
    code, _, err = run_main(["doctor"], {})
    assert code == 2
    assert "--issuer" in err


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD_DISCOVERY.items() if k != key}


@pytest.mark.parametrize(
    ("discovery", "jwks", "failing"),
    [
        ({**GOOD_DISCOVERY, "issuer": ISSUER + "/"}, None, "issuer"),
        (_without("issuer"), None, "issuer"),
        (_without("authorization_endpoint"), None, "authorization_endpoint"),
        (_without("token_endpoint"), None, "token_endpoint"),
        ({**GOOD_DISCOVERY, "token_endpoint": "http://idp.example/oauth/token"}, None, "token_endpoint"),
        ({**GOOD_DISCOVERY, "code_challenge_methods_supported": ["plain"]}, None, "code_challenge_methods_supported"),
        (_without("jwks_uri"), None, "jwks_uri"),
        (GOOD_DISCOVERY, {"keys": []}, "jwks_uri"),
        (GOOD_DISCOVERY, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "jwks_uri"),
        ({**GOOD_DISCOVERY, "response_types_supported": ["id_token"]}, None, "response_types_supported"),
        ({**GOOD_DISCOVERY, "grant_types_supported": ["client_credentials"]}, None, "grant_types_supported"),
        ({**GOOD_DISCOVERY, "token_endpoint_auth_methods_supported": ["private_key_jwt"]}, None, "client authentication"),
        ({**GOOD_DISCOVERY, "token_endpoint_auth_methods_supported": ["client_secret_basic"]}, None, "client authentication"),
    ],
)
def test_doctor_fails_on_what_breaks_the_shim(
    discovery: dict[str, Any], jwks: dict[str, Any] | None, failing: str
) -> None:
    code, out = run_doctor(FakeIdP(discovery, jwks=jwks), ["--issuer", ISSUER])
    assert code == 1
    assert "FAIL" in levels(out).get(failing, set()), out


@pytest.mark.parametrize(
    ("discovery", "warned"),
    [
        (_without("code_challenge_methods_supported"), "code_challenge_methods_supported"),
        (_without("revocation_endpoint"), "revocation_endpoint"),
        ({**GOOD_DISCOVERY, "grant_types_supported": ["authorization_code"]}, "refresh tokens"),
        (_without("token_endpoint_auth_methods_supported"), "client authentication"),
    ],
)
def test_doctor_warns_on_what_degrades_the_shim(discovery: dict[str, Any], warned: str) -> None:
    code, out = run_doctor(FakeIdP(discovery), ["--issuer", ISSUER, "--extra-scopes", "offline_access"])
    assert code == 0, out
    assert levels(out)[warned] == {"WARN"}


def test_doctor_suggests_offline_access_when_the_idp_offers_it() -> None:
    code, out = run_doctor(FakeIdP(), ["--issuer", ISSUER])
    assert code == 0
    assert "--extra-scopes offline_access" in out


def test_doctor_fails_when_no_discovery_document_exists() -> None:
    code, out = run_doctor(FakeIdP(oidc_discovery=False, discovery={}), ["--issuer", ISSUER + "/nothing"])
    assert code == 1
    assert levels(out)["discovery"] == {"FAIL"}
    assert "HTTP 404" in out


def test_doctor_falls_back_to_rfc8414_and_says_how_to_configure_it() -> None:
    code, out = run_doctor(FakeIdP(oidc_discovery=False), ["--issuer", ISSUER])
    assert code == 0, out
    assert f"--upstream-metadata-url {ISSUER}/.well-known/oauth-authorization-server" in out


def test_doctor_reports_an_unreachable_idp_without_a_traceback() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def run() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
            return await diagnose(DoctorInput(issuer=ISSUER), http=http)

    findings = asyncio.run(run())
    assert [f.level for f in findings] == ["FAIL"]
    assert "could not connect" in findings[0].message


def test_doctor_authorize_probe_sends_what_the_shim_would() -> None:
    idp = FakeIdP()
    run_doctor(idp, [*FULL_ARGS, "--public-url", "https://api.example.com", "--audience", "https://api.example.com/mcp", "--audience-param", "audience"])
    (probe,) = [r for r in idp.requests if r.url.path == "/authorize"]
    query = parse_qs(urlsplit(str(probe.url)).query)
    assert query["redirect_uri"] == ["https://api.example.com/oauth/callback"]
    assert query["client_id"] == ["shim-client"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["audience"] == ["https://api.example.com/mcp"]
    assert query["scope"] == ["openid offline_access"]


@pytest.mark.parametrize(
    ("answer", "level", "text"),
    [
        (httpx.Response(200, text="<html>login</html>"), "OK", "accepted client shim-client"),
        (httpx.Response(400, text="Callback URL mismatch"), "FAIL", "is registered as its callback"),
        (
            httpx.Response(
                302,
                headers={
                    "location": "http://127.0.0.1:8000/oauth/callback?error=unauthorized_client&error_description=no+PKCE"
                },
            ),
            "FAIL",
            "unauthorized_client: no PKCE",
        ),
    ],
)
def test_doctor_authorize_probe_reports_the_idp_answer(answer: httpx.Response, level: str, text: str) -> None:
    code, out = run_doctor(FakeIdP(authorize=lambda request: answer), FULL_ARGS)
    assert levels(out)["authorization request"] == {level}
    assert text in out
    assert code == (1 if level == "FAIL" else 0)


@pytest.mark.parametrize(
    ("token_error", "level"),
    [("invalid_grant", "OK"), ("invalid_client", "FAIL"), ("unauthorized_client", "FAIL"), ("server_error", "WARN")],
)
def test_doctor_token_probe_checks_the_client_credentials(token_error: str, level: str) -> None:
    code, out = run_doctor(FakeIdP(token_error=token_error), FULL_ARGS, {"MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET})
    assert levels(out)["client credentials"] == {level}
    assert SECRET not in out


def test_doctor_token_probe_uses_basic_auth_when_configured() -> None:
    idp = FakeIdP()
    run_doctor(idp, [*FULL_ARGS, "--client-secret", SECRET, "--token-auth-method", "client_secret_basic"])
    (probe,) = [r for r in idp.requests if r.url.path == "/oauth/token"]
    assert probe.headers["authorization"].startswith("Basic ")
    assert b"client_secret" not in probe.content


def test_doctor_points_auth0_users_at_the_audience_parameter() -> None:
    tenant = "https://tenant.eu.auth0.com/"
    discovery = {**GOOD_DISCOVERY, "issuer": tenant}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=discovery)
        return httpx.Response(200, json=RSA_JWKS)

    async def run() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await diagnose(DoctorInput(issuer=tenant), http=http)

    findings = asyncio.run(run())
    (audience,) = [f for f in findings if f.check == "audience"]
    assert audience.level == "WARN"
    assert "--audience-param audience" in audience.message


# --- the proxy with real MCP peers -------------------------------------------------------------


@contextlib.contextmanager
def _uvicorn(app: Any) -> Iterator[int]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.02)
            assert thread.is_alive(), "uvicorn exited during startup"
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_proxy_carries_an_mcp_sdk_session_end_to_end() -> None:
    """The mcp SDK client, through the proxy, to the mcp SDK server: sessions, SSE, DELETE."""
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.mcpserver import MCPServer
    from starlette.applications import Starlette
    from starlette.routing import Route

    server = MCPServer("proxied")

    @server.tool()
    def shout(text: str) -> str:
        return text.upper()

    with _uvicorn(server.streamable_http_app(streamable_http_path="/mcp")) as upstream_port:
        proxy = MCPReverseProxy(f"http://127.0.0.1:{upstream_port}/mcp", mount_path="/mcp")
        front = Starlette(routes=[Route("/mcp", proxy), Route("/mcp/{rest:path}", proxy)])
        with _uvicorn(front) as port:

            async def session() -> tuple[list[str], str]:
                async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_):
                    async with ClientSession(read, write) as client:
                        await client.initialize()
                        tools = [tool.name for tool in (await client.list_tools()).tools]
                        result = await client.call_tool("shout", {"text": "through the shim"})
                        return tools, result.content[0].text  # type: ignore[union-attr]

            assert asyncio.run(session()) == (["shout"], "THROUGH THE SHIM")


# --- doctor against the project's development IdP (a real authlib authorization server) -------


def _dev_idp_doctor(argv: list[str], *, secret: str) -> tuple[int, str]:
    from mcp_oauth_shim.dev_idp import DevIdP

    idp = DevIdP(
        issuer="http://127.0.0.1:9000",
        client_secret="the-right-secret-" + "x" * 20,
        redirect_uris=["https://api.example.com/oauth/callback"],
    )
    out = io.StringIO()
    args = parser().parse_args(["doctor", "--issuer", "http://127.0.0.1:9000", "--client-id", idp.client_id, *argv])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url="http://127.0.0.1:9000")
    code = cli.doctor(args, {"MCP_OAUTH_SHIM_CLIENT_SECRET": secret}, out, http=http)
    return code, out.getvalue()


def test_doctor_passes_the_development_idp() -> None:
    code, out = _dev_idp_doctor(
        ["--public-url", "https://api.example.com", "--extra-scopes", "offline_access"], secret="the-right-secret-" + "x" * 20
    )
    assert code == 0, out
    found = levels(out)
    assert found["authorization request"] == {"OK"}
    assert found["client credentials"] == {"OK"}


def test_doctor_catches_a_wrong_secret_at_the_development_idp() -> None:
    code, out = _dev_idp_doctor(["--public-url", "https://api.example.com"], secret="a-wrong-secret")
    assert code == 1
    assert levels(out)["client credentials"] == {"FAIL"}
    assert "a-wrong-secret" not in out


def test_doctor_catches_an_unregistered_callback_at_the_development_idp() -> None:
    code, out = _dev_idp_doctor(["--public-url", "https://elsewhere.example.com"], secret="the-right-secret-" + "x" * 20)
    assert code == 1
    assert levels(out)["authorization request"] == {"FAIL"}
    assert "https://elsewhere.example.com/oauth/callback" in out


def test_create_app_builds_the_serve_app_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from mcp_oauth_shim.cli import create_app

    for name, value in {
        "MCP_OAUTH_SHIM_PUBLIC_URL": "https://mcp.example.com",
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example.com",
        "MCP_OAUTH_SHIM_CLIENT_ID": "shim",
        "MCP_OAUTH_SHIM_CLIENT_SECRET": "s3cret-value",
        "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 40,
    }.items():
        monkeypatch.setenv(name, value)
    client = TestClient(create_app(), base_url="https://mcp.example.com")
    prm = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert prm["authorization_servers"] == ["https://mcp.example.com"]
    assert "s3cret-value" not in client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}).text


def test_create_app_without_configuration_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp_oauth_shim.cli import APP_BOOT_FAILURE, create_app

    for name in list(os.environ):
        if name.startswith("MCP_OAUTH_SHIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_OAUTH_SHIM_PUBLIC_URL", "https://mcp.example.com")
    with pytest.raises(SystemExit) as exc:
        create_app()
    assert exc.value.code == APP_BOOT_FAILURE
    err = capsys.readouterr().err
    assert "MCP_OAUTH_SHIM_CLIENT_ID" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["create_app", "build_app", "build_shim", "APP_BOOT_FAILURE"])
def test_the_app_factory_names_stay_reachable_from_the_cli_module(name: str) -> None:
    from mcp_oauth_shim import app_factory, cli

    assert getattr(cli, name) is getattr(app_factory, name)

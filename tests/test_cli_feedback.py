"""The command line as a new user meets it: a wrong setting is one line naming the flag and the
variable (exit status 2, never a traceback), ``--version``, the app factory that cannot guess
its public URL, and a start-up that says when the IdP is down."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import __version__, cli
from mcp_oauth_shim.dev_idp import DevIdP

KEY = "k" * 48
BASE_ENV = {
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example",
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": "an-upstream-secret",
    "MCP_OAUTH_SHIM_SECRET_KEYS": KEY,
}


def run_main(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, environ=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "env", "flag", "variable"),
    [
        pytest.param(
            ["serve", "--check", "--mcp-upstream", "localhost:9000/mcp"], {}, "--mcp-upstream",
            "MCP_OAUTH_SHIM_MCP_UPSTREAM", id="mcp-upstream-without-scheme",
        ),
        pytest.param(["serve", "--check"], {"MCP_OAUTH_SHIM_PORT": "99999"}, "--port", "MCP_OAUTH_SHIM_PORT", id="port-env-out-of-range"),
        pytest.param(["serve", "--check", "--port", "0"], {}, "--port", "MCP_OAUTH_SHIM_PORT", id="port-flag-zero"),
        pytest.param(["serve", "--check", "--port", "eighty"], {}, "--port", "MCP_OAUTH_SHIM_PORT", id="port-not-a-number"),
        pytest.param(
            ["serve", "--check", "--public-url", "127.0.0.1:8000"], {}, "--public-url", "MCP_OAUTH_SHIM_PUBLIC_URL",
            id="public-url-without-scheme",
        ),
        pytest.param(
            ["serve", "--check"], {"MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "idp.example"}, "--upstream-issuer",
            "MCP_OAUTH_SHIM_UPSTREAM_ISSUER", id="issuer-env-without-scheme",
        ),
        pytest.param(
            ["serve", "--check", "--resource", "http://[::1/mcp"], {}, "--resource", "MCP_OAUTH_SHIM_RESOURCE",
            id="resource-unclosed-bracket",
        ),
        pytest.param(
            ["serve", "--check"], {"MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION": "maybe"}, "--forward-authorization",
            "MCP_OAUTH_SHIM_FORWARD_AUTHORIZATION", id="bool-env",
        ),
        pytest.param(
            ["doctor", "--issuer", "127.0.0.1:8820"], {}, "--issuer", "MCP_OAUTH_SHIM_UPSTREAM_ISSUER", id="doctor-issuer-without-scheme",
        ),
        pytest.param(
            ["doctor"], {"MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "127.0.0.1:8820"}, "--issuer", "MCP_OAUTH_SHIM_UPSTREAM_ISSUER",
            id="doctor-issuer-env-without-scheme",
        ),
        pytest.param(
            ["doctor", "--issuer", "https://idp.example", "--public-url", "api.example.com"], {}, "--public-url",
            "MCP_OAUTH_SHIM_PUBLIC_URL", id="doctor-public-url-without-scheme",
        ),
    ],
)
def test_a_malformed_setting_is_one_line_naming_the_flag_and_the_variable(
    argv: list[str], env: dict[str, str], flag: str, variable: str
) -> None:
    code, out, err = run_main(argv, {**BASE_ENV, **env})
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"{flag} / {variable}" in err
    assert "configuration OK" not in out


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"MCP_OAUTH_SHIM_CLIENT_ID": "..."}, id="client-id"),
        pytest.param({"MCP_OAUTH_SHIM_CLIENT_SECRET": "..."}, id="client-secret"),
        pytest.param({"MCP_OAUTH_SHIM_SECRET_KEYS": "..."}, id="secret-keys-dots"),
        pytest.param({"MCP_OAUTH_SHIM_SECRET_KEYS": "<48 random bytes from secrets.token_urlsafe>"}, id="secret-keys-angle"),
    ],
)
def test_a_placeholder_from_the_docs_is_refused_in_one_line(env: dict[str, str]) -> None:
    code, _, err = run_main(["serve", "--check"], {**BASE_ENV, **env})
    assert code == 2
    assert "placeholder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["serve", "--mcp-upstream", "localhost:9000/mcp"], id="serve-mcp-upstream"),
        pytest.param(["doctor", "--issuer", "127.0.0.1:8820"], id="doctor-issuer"),
    ],
)
def test_the_installed_command_prints_no_traceback_for_a_wrong_setting(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_oauth_shim", *argv], env={**BASE_ENV, "PATH": ""}, capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_version_flag_prints_the_version() -> None:
    done = subprocess.run([sys.executable, "-m", "mcp_oauth_shim", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"mcp-oauth-shim {__version__}"


def test_serve_warns_when_the_public_url_names_another_loopback_port_than_it_listens_on() -> None:
    code, out, _ = run_main(["serve", "--check", "--port", "8825", "--public-url", "http://127.0.0.1:8000"], BASE_ENV)
    assert code == 0
    assert "warning: --public-url http://127.0.0.1:8000 names port 8000 but the shim listens on 8825" in out


def test_serve_does_not_warn_when_the_public_url_is_derived_from_the_listener() -> None:
    code, out, _ = run_main(["serve", "--check", "--port", "8825"], BASE_ENV)
    assert code == 0
    assert "http://127.0.0.1:8825/mcp" in out
    assert "warning" not in out


# -- the app factory --------------------------------------------------------------------------


@pytest.fixture
def factory_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("MCP_OAUTH_SHIM_"):
            monkeypatch.delenv(name)
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    yield monkeypatch


def test_the_factory_without_a_public_url_refuses_in_one_line(
    factory_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    factory_env.setenv("MCP_OAUTH_SHIM_PORT", "8825")  # read by `serve`, invisible to the factory
    with pytest.raises(SystemExit) as exc:
        cli.create_app()
    assert exc.value.code == cli.APP_BOOT_FAILURE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "MCP_OAUTH_SHIM_PUBLIC_URL is required" in err


def test_the_factory_advertises_the_public_url_it_is_given(factory_env: pytest.MonkeyPatch) -> None:
    factory_env.setenv("MCP_OAUTH_SHIM_PUBLIC_URL", "http://127.0.0.1:8825")
    factory_env.setenv("MCP_OAUTH_SHIM_MCP_UPSTREAM", "http://127.0.0.1:9/mcp")
    client = TestClient(cli.create_app(), base_url="http://127.0.0.1:8825")
    prm = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == "http://127.0.0.1:8825/mcp"
    assert prm["authorization_servers"] == ["http://127.0.0.1:8825"]
    challenge = client.post("/mcp").headers["www-authenticate"]
    assert 'resource_metadata="http://127.0.0.1:8825/.well-known/oauth-protected-resource/mcp"' in challenge


def test_uvicorn_workers_stop_instead_of_restarting_when_the_factory_refuses() -> None:
    env = {**BASE_ENV, "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "mcp_oauth_shim.cli:create_app", "--port", "0", "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert "MCP_OAUTH_SHIM_PUBLIC_URL is required" in done.stderr
    assert "failed to start, stopping the parent process" in done.stderr
    assert "Traceback" not in done.stderr


# -- start-up with the IdP down ---------------------------------------------------------------


def _settings(env: dict[str, str]) -> cli.Settings:
    return cli.serve_settings(cli.parser().parse_args(["serve"]), env)


def test_start_up_warns_when_the_idp_cannot_be_reached_and_starts_anyway(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    settings = _settings(BASE_ENV)
    shim = cli.build_shim(settings, http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim"):
        with TestClient(cli.build_app(settings, shim), base_url="http://127.0.0.1:8000") as client:
            assert client.get("/.well-known/oauth-protected-resource/mcp").status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "not usable at start-up" in r.getMessage()]
    assert len(warnings) == 1
    assert "https://idp.example/.well-known/openid-configuration" in warnings[0]


def test_start_up_is_quiet_when_the_idp_answers(caplog: pytest.LogCaptureFixture) -> None:
    idp = DevIdP(issuer="https://idp.example", redirect_uris=["http://127.0.0.1:8000/oauth/callback"])
    settings = _settings({**BASE_ENV, "MCP_OAUTH_SHIM_CLIENT_ID": idp.client_id})
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url="https://idp.example")
    shim = cli.build_shim(settings, http_client=http)
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim"):
        with TestClient(cli.build_app(settings, shim), base_url="http://127.0.0.1:8000"):
            pass
    assert not [r for r in caplog.records if "start-up" in r.getMessage()]

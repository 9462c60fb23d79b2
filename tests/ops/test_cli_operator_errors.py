"""What an operator meets when ``serve`` cannot start as configured: one line naming the
setting, exit status 2, never a traceback, never a credential echoed."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

from mcp_oauth_shim import cli

SECRET = "the-idp-client-secret-value"
BASE_ENV = {
    # Loopback, nobody listening: nothing here needs the IdP to answer.
    "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "http://127.0.0.1:9",
    "MCP_OAUTH_SHIM_CLIENT_ID": "shim-client",
    "MCP_OAUTH_SHIM_CLIENT_SECRET": SECRET,
    "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
}


def run_main(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, environ={**BASE_ENV, **env}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other process already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_metrics_port_already_in_use_is_one_line_not_a_traceback(busy_port: int) -> None:
    code, _, err = run_main(["serve", "--metrics-port", str(busy_port)], {})
    assert code == 2
    assert err.startswith("mcp-oauth-shim serve: --metrics-port") and f"127.0.0.1:{busy_port}" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--check"], []], ids=["check", "serve"])
def test_a_metrics_port_equal_to_the_serving_port_is_refused_before_anything_listens(argv: list[str], busy_port: int) -> None:
    # The serving port is taken too: were the check missing, serve would fail later, differently.
    code, _, err = run_main(["serve", *argv, "--port", str(busy_port), "--metrics-port", str(busy_port)], {})
    assert code == 2
    assert err.strip() == (
        f"mcp-oauth-shim serve: --metrics-port / MCP_OAUTH_SHIM_METRICS_PORT must differ from --port ({busy_port}): "
        "the metrics are served apart from the public endpoints."
    )


MCP_UPSTREAM_REFUSED = (
    "--mcp-upstream / MCP_OAUTH_SHIM_MCP_UPSTREAM must be an http(s) URL without query or fragment."
)


@pytest.mark.parametrize(
    "upstream",
    ["http://127.0.0.1:9/mcp?token=proxy-credential-in-query", "http://127.0.0.1:9/mcp#proxy-credential-in-fragment"],
    ids=["query", "fragment"],
)
def test_an_mcp_upstream_with_a_query_or_fragment_is_one_line_that_does_not_echo_it(upstream: str) -> None:
    code, out, err = run_main(["serve", "--check"], {"MCP_OAUTH_SHIM_MCP_UPSTREAM": upstream})
    assert code == 2
    assert err.strip() == f"mcp-oauth-shim serve: {MCP_UPSTREAM_REFUSED}"
    assert "proxy-credential" not in out + err


def test_the_app_factory_refuses_an_mcp_upstream_with_a_query_as_a_boot_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**BASE_ENV, "MCP_OAUTH_SHIM_PUBLIC_URL": "http://127.0.0.1:8000",
                        "MCP_OAUTH_SHIM_MCP_UPSTREAM": "http://127.0.0.1:9/mcp?token=proxy-credential"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.create_app()
    assert exited.value.code == cli.APP_BOOT_FAILURE
    assert capsys.readouterr().err.strip() == f"mcp-oauth-shim create_app: {MCP_UPSTREAM_REFUSED}"


PROXY_PASSWORD = "mcp-server-basic-auth-password"


@pytest.mark.parametrize(
    "variable",
    ["MCP_OAUTH_SHIM_MCP_UPSTREAM", "MCP_OAUTH_SHIM_UPSTREAM_METADATA_URL"],
)
def test_the_configuration_report_redacts_a_password_given_in_a_url(variable: str) -> None:
    url = f"http://operator:{PROXY_PASSWORD}@127.0.0.1:9/mcp"
    code, out, err = run_main(["serve", "--check"], {variable: url})
    assert code == 0, err
    assert PROXY_PASSWORD not in out + err
    assert "http://operator:<redacted>@127.0.0.1:9/mcp" in out


def test_the_reverse_proxy_logs_the_mcp_server_it_cannot_reach_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    import httpx

    from mcp_oauth_shim.mcp_proxy import MCPReverseProxy

    proxy = MCPReverseProxy(f"http://operator:{PROXY_PASSWORD}@127.0.0.1:9/mcp", mount_path="/mcp")

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="https://api.example.com") as client:
            answer = await client.post("/mcp", content=b"{}")
        await proxy.aclose()
        return answer

    with caplog.at_level("DEBUG"):
        assert asyncio.run(call()).status_code == 502
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "MCP upstream unreachable: http://operator:<redacted>@127.0.0.1:9/mcp" in logged
    assert PROXY_PASSWORD not in logged


# os.environ holds a byte that is not UTF-8 (an env file written in Latin-1) as a lone surrogate.
UNDECODABLE = "caf\udce9"


@pytest.mark.parametrize(
    ("argv", "variable", "secret"),
    [
        (["serve", "--check"], "MCP_OAUTH_SHIM_SECRET_KEYS", True),
        (["serve", "--check"], "MCP_OAUTH_SHIM_CLIENT_SECRET", True),
        (["serve", "--check"], "MCP_OAUTH_SHIM_CLIENT_ID", False),
        (["serve", "--check"], "MCP_OAUTH_SHIM_PUBLIC_URL", False),
        (["doctor"], "MCP_OAUTH_SHIM_UPSTREAM_ISSUER", False),
    ],
    ids=["secret-keys", "client-secret", "client-id", "public-url", "doctor-issuer"],
)
def test_a_setting_that_is_not_utf8_text_is_one_line_naming_it(argv: list[str], variable: str, secret: bool) -> None:
    value = "https://idp.example/" + UNDECODABLE * 12 if "URL" in variable or "ISSUER" in variable else UNDECODABLE * 12
    code, out, err = run_main(argv, {variable: value})
    assert code == 2
    [line] = err.strip().splitlines()
    assert variable in line and "not UTF-8 text" in line
    assert "caf" not in out + err  # never echoed: it may be a secret, and it cannot be printed


@pytest.mark.parametrize(
    ("argv", "variable", "url"),
    [
        (["doctor"], "MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "http://[::1]x"),
        (["serve", "--check"], "MCP_OAUTH_SHIM_UPSTREAM_ISSUER", "http://[::1]x"),
        (["serve", "--check"], "MCP_OAUTH_SHIM_PUBLIC_URL", "http://[::1]x:8000"),
        (["serve", "--check"], "MCP_OAUTH_SHIM_MCP_UPSTREAM", "http://[::1]junk/mcp"),
    ],
    ids=["doctor-issuer", "serve-issuer", "public-url", "mcp-upstream"],
)
def test_a_url_with_text_after_its_bracketed_host_is_refused_in_one_line(argv: list[str], variable: str, url: str) -> None:
    code, _, err = run_main(argv, {variable: url})
    assert code == 2
    [line] = err.strip().splitlines()
    assert variable in line and "must be an absolute http:// or https:// URL" in line


def test_serve_runs_where_the_platform_sets_web_concurrency() -> None:
    """Heroku-style platforms set WEB_CONCURRENCY, which uvicorn reads as its worker count; with
    the app object ``serve`` hands it, uvicorn would exit at once ("You must pass the
    application as an import string")."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **BASE_ENV, "WEB_CONCURRENCY": "4", "MCP_OAUTH_SHIM_PORT": str(port)}
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_oauth_shim", "serve"], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        answered = None
        while answered is None and process.poll() is None and time.monotonic() < deadline:
            try:
                answered = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                time.sleep(0.1)
        running = process.poll() is None
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert running and answered == 200, output[-2000:]
    assert "WEB_CONCURRENCY" in output  # the report says it is not honoured


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "3601"])
def test_a_shutdown_timeout_that_is_no_positive_number_of_seconds_is_one_line(value: str) -> None:
    code, _, err = run_main(["serve", "--check"], {"MCP_OAUTH_SHIM_SHUTDOWN_TIMEOUT": value})
    assert code == 2
    [line] = err.strip().splitlines()
    assert "--shutdown-timeout / MCP_OAUTH_SHIM_SHUTDOWN_TIMEOUT" in line and "seconds" in line


def test_a_stopping_server_cancels_what_is_still_in_flight_after_the_shutdown_timeout() -> None:
    """SIGTERM with a request waiting on an IdP that never answers (the shim's own timeout is
    10 s): after --shutdown-timeout the request is cancelled and the process exits, rather than
    living on until the request ends (an MCP event stream never does)."""
    import contextlib
    import http.client
    import signal
    import threading

    from tests.peers.procs import start_serve
    from tests.peers.servers import free_port

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    port = free_port()
    env = {
        **BASE_ENV, "MCP_OAUTH_SHIM_SHUTDOWN_TIMEOUT": "1",
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": f"http://127.0.0.1:{silent.getsockname()[1]}",
    }
    process = start_serve(env, port)
    outcome: list[object] = []
    retry_after: list[str | None] = []
    idp_side: socket.socket | None = None

    def ask_metadata() -> None:  # needs the IdP's discovery document: waits on the silent IdP
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", "/.well-known/oauth-authorization-server")
            response = connection.getresponse()
            outcome.append(response.status)
            retry_after.append(response.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(type(exc).__name__)

    try:
        # The start-up check of the IdP (done once the server answers) left its connection in
        # the backlog: drop it, so that the connection accepted next is the request's.
        silent.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                silent.accept()[0].close()
        waiting = threading.Thread(target=ask_metadata)
        waiting.start()
        # Once accepted, the shim is waiting on the IdP. The accepted connection is held open until
        # the end: dropping it would close it, and the shim could answer before the signal arrives.
        silent.settimeout(60)
        idp_side, _ = silent.accept()
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
        waiting.join(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        if idp_side is not None:
            idp_side.close()
        silent.close()
    # uvicorn ends by re-raising the signal it caught: the exit status says "stopped by SIGTERM".
    assert process.returncode in (0, -signal.SIGTERM), output[-2000:]
    assert "timeout graceful shutdown exceeded" in output
    # Cancelled, not answered after the IdP's timeout (504); and answered 503, not uvicorn's 500.
    assert outcome == [503], outcome
    assert retry_after == ["1"]
    assert "Exception in ASGI application" not in output

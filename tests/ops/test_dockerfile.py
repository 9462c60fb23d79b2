"""The Dockerfile, read as text (no Docker daemon is needed): what it runs, as whom, how its
health check probes, and that every variable it sets is one ``serve`` reads."""

import io
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import uvicorn

from mcp_oauth_shim import cli
from mcp_oauth_shim.config import Paths

from ..shim.kit import make_kit

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def only(name: str) -> str:
    [args] = [args for word, args in instructions() if word == name]
    return args


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for word, args in instructions():
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def healthcheck_command() -> list[str]:
    args = only("HEALTHCHECK")
    return json.loads(args[args.index("CMD") + 3 :].strip())


def test_the_image_is_built_on_python_3_12_slim():
    assert only("FROM") == "python:3.12-slim"


def test_the_server_runs_as_a_non_root_user():
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The USER comes before the ENTRYPOINT.
    words = [word for word, _ in instructions()]
    assert max(i for i, w in enumerate(words) if w == "USER") < words.index("ENTRYPOINT")


def test_the_entrypoint_is_the_packages_console_script_serving():
    entrypoint = json.loads(only("ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["mcp-oauth-shim", "serve"]
    assert scripts["mcp-oauth-shim"] == "mcp_oauth_shim.cli:main"


def test_every_variable_the_dockerfile_names_is_one_serve_reads():
    serve_variables = {option.env for option in cli.SERVE_OPTIONS}
    text = (ROOT / "Dockerfile").read_text()
    named = set(re.findall(r"MCP_OAUTH_SHIM_[A-Z_]+", text))
    assert named and named <= serve_variables, named - serve_variables


def test_no_secret_is_set_in_the_image():
    secret_variables = {option.env for option in cli.SERVE_OPTIONS if option.secret}
    assert not secret_variables & set(env())
    assert not [args for word, args in instructions() if word == "ARG"]


def test_the_exposed_port_is_the_one_serve_listens_on():
    assert only("EXPOSE") == env()["MCP_OAUTH_SHIM_PORT"]


def test_serve_accepts_the_image_environment_plus_the_required_settings():
    environ = {
        **env(),
        "MCP_OAUTH_SHIM_PUBLIC_URL": "https://mcp.example.com",
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example.com",
        "MCP_OAUTH_SHIM_CLIENT_ID": "shim",
        "MCP_OAUTH_SHIM_CLIENT_SECRET": "shim-secret",
        "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
    }
    out = io.StringIO()
    assert cli.main(["serve", "--check"], environ=environ, out=out, err=out) == 0, out.getvalue()
    assert "log-format                 json  [env MCP_OAUTH_SHIM_LOG_FORMAT]" in out.getvalue()


def test_the_health_check_probes_the_liveness_path():
    code = healthcheck_command()
    assert code[:2] == ["python", "-c"]
    assert repr(Paths().liveness) in code[2]


def test_the_dockerignore_sends_only_the_packages_and_their_metadata():
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    copied = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    sources = {args.split()[0] for word, args in instructions() if word == "COPY"}
    assert sources <= copied | {"pyproject.toml"}, sources - copied


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_shim():
    """The shim's app under a real uvicorn on a free loopback port."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(make_kit().shim.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)


def run_healthcheck(port: int, public_url: str = "") -> int:
    python, flag, code = healthcheck_command()
    environ = {"MCP_OAUTH_SHIM_PORT": str(port), "MCP_OAUTH_SHIM_PUBLIC_URL": public_url, "PATH": ""}
    return subprocess.run([sys.executable, flag, code], env=environ, capture_output=True, timeout=30).returncode


def test_the_health_check_passes_against_a_running_shim(live_shim):
    assert run_healthcheck(live_shim) == 0


def test_the_health_check_fails_when_nothing_answers():
    sock = free_socket()  # bound, not listening: the connection is refused
    try:
        assert run_healthcheck(sock.getsockname()[1]) != 0
    finally:
        sock.close()

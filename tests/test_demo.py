"""The quick-start demo works end to end: `python examples/demo.py --self-check` exits 0.

It runs the development IdP, the shim and an MCPServer, then logs in with the real `mcp` SDK
OAuth client (consent page, IdP login, callback, token exchange), calls tools and refreshes.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.parametrize("flags", [[], ["--auto-approve"]], ids=["login-form", "auto-approve"])
def test_self_check_logs_in_and_calls_a_tool(flags: list[str]) -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--self-check", *flags],
                         capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SELF-CHECK PASS" in run.stdout
    assert "tools/call whoami: subject='demo'" in run.stdout
    assert "refresh: new access token through the shim, no new login" in run.stdout
    assert re.search(r"^Connect a client, e\.g\.:  npx -y mcp-remote@0\.15\.1 http://127\.0\.0\.1:\d+/mcp$",
                     run.stdout, re.MULTILINE)


def test_self_check_goes_through_the_shim_consent_page_and_the_idp_login() -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--self-check"], capture_output=True, text=True, timeout=150)
    steps = [line for line in run.stdout.splitlines() if line.startswith("  browser:")]
    assert any("/oauth/consent" in s for s in steps), run.stdout
    assert any("/login" in s for s in steps), run.stdout
    assert steps and steps[-1].endswith("back at the client with a code"), run.stdout


def test_self_check_prints_no_codes_or_tokens_even_in_access_logs() -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--self-check", "--verbose"],
                         capture_output=True, text=True, timeout=150)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert '"GET /oauth/callback?[redacted] HTTP/1.1" 302' in output, output  # access logs are on, queries hidden
    assert not re.search(r"(code|state|token)=", output), output
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.", output), output  # no JWT


def test_demo_serves_a_protected_mcp_endpoint_until_stopped() -> None:
    process = subprocess.Popen([sys.executable, str(DEMO), "--port", "0", "--idp-port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        assert process.stdout is not None
        for line in process.stdout:  # the banner comes within seconds; the test timeout bounds it
            match = re.search(r"mcp-remote@0\.15\.1 (http://127\.0\.0\.1:\d+/mcp)$", line.strip())
            if match:
                url = match.group(1)
                break
        assert url, "the demo printed no MCP URL"
        response = httpx.post(url, json={}, timeout=10)
        assert response.status_code == 401
        assert "resource_metadata=" in response.headers["www-authenticate"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONSENT = """<form method="post" action="/oauth/consent"><input type="hidden" name="ticket" value="t1">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="approve">Allow</button></form>"""
LOGIN = """<form method="post" action="/login"><input type="hidden" name="authorize_query" value="a=1&amp;b=2">
<input name="username" value=""><input name="password" type="password" value="">
<button type="submit">Sign in</button></form>"""


@pytest.mark.parametrize(
    ("page", "page_url", "target", "fields"),
    [
        (CONSENT, "http://127.0.0.1:8000/oauth/authorize?x=1", "http://127.0.0.1:8000/oauth/consent",
         {"ticket": "t1", "decision": "approve"}),
        (LOGIN, "http://127.0.0.1:9000/authorize?x=1", "http://127.0.0.1:9000/login",
         {"authorize_query": "a=1&b=2", "username": "demo", "password": "demo"}),
    ],
    ids=["consent-approves", "login-fills-the-demo-account"],
)
def test_headless_browser_submits_what_a_user_would(page: str, page_url: str, target: str,
                                                     fields: dict[str, str]) -> None:
    url, sent, _ = load_demo()._submission(page, page_url)
    assert (url, sent) == (target, fields)


@pytest.mark.parametrize(
    "page",
    ["<p>no form</p>", '<form method="get" action="/x"><button>Allow</button></form>',
     '<form method="post"><button value="a">One</button><button value="b">Two</button></form>',
     '<form method="post"><button value="no">Do not allow</button><button value="x">Later</button></form>'],
    ids=["no-form", "get-form", "no-approve-button", "only-a-refusal-mentions-allow"],
)
def test_headless_browser_refuses_pages_it_cannot_approve(page: str) -> None:
    demo = load_demo()
    with pytest.raises(demo.SelfCheckError):
        demo._submission(page, "http://127.0.0.1:8000/")


# -- what the demo tells its user -----------------------------------------------------------------


def test_each_login_is_shown_without_verbose() -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--self-check"], capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[mcp] INFO: consent approved; redirecting to the identity provider" in run.stderr
    assert "[mcp] INFO: relaying the authorization code to the client" in run.stderr
    assert '"GET /oauth/callback' not in run.stderr  # access logs only with --verbose


def test_verbose_logs_say_which_server_wrote_them() -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--self-check", "--verbose"],
                         capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and all(re.match(r"^\[(idp|mcp|demo)\] ", line) for line in lines), run.stderr
    assert re.search(r'^\[idp\] INFO: .*"GET /authorize\?\[redacted\] HTTP/1\.1" 302', run.stderr, re.MULTILINE)
    assert re.search(r'^\[mcp\] INFO: .*"GET /oauth/callback\?\[redacted\] HTTP/1\.1" 302', run.stderr, re.MULTILINE)


def test_the_demo_imports_only_declared_dependencies() -> None:
    """`pip install -e ".[fastapi]"` must be enough: every third-party import is declared."""
    import ast
    import tomllib
    from importlib.metadata import packages_distributions

    root = DEMO.parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")
                for req in [*project["dependencies"], *project["optional-dependencies"]["fastapi"]]}
    local = {"demo_api", "mcp_oauth_shim", "mcp_bridge"}
    distributions = packages_distributions()
    for path in (DEMO, root / "examples" / "demo_api.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local:
                    continue
                owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                assert owners & declared, f"{path.name} imports {top} ({owners}), not declared in pyproject.toml"

"""The pages a new user copies from: commands that work as written, client configurations that
parse, redirect URIs the shim accepts, no path of one particular machine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONNECT = (ROOT / "docs" / "connect-clients.md").read_text()


def fenced_blocks(text: str, language: str | None = None) -> list[str]:
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [body for lang, body in blocks if language is None or lang == language]


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def test_the_readme_quick_start_is_exactly_two_commands() -> None:
    commands = [line for block in fenced_blocks(section(README, "## Quick start")) for line in block.splitlines()]
    assert commands == [
        'python -m pip install -e ".[fastapi]" && python examples/demo.py',
        'python -m pip install -e ".[dev]" && python -m pytest',
    ]


def test_the_readme_says_how_to_run_the_suite_without_node() -> None:
    assert 'python -m pytest -m "not integration"' in section(README, "## Quick start")


def test_the_quick_start_installs_what_the_demo_imports() -> None:
    quickstart = (ROOT / "docs" / "quickstart.md").read_text()
    installs = [line for block in fenced_blocks(quickstart) for line in block.splitlines() if "pip install" in line]
    assert installs and all("[fastapi]" in line for line in installs), installs


@pytest.mark.parametrize(
    "path",
    sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("examples/*.py")]),
    ids=lambda p: p.name,
)
def test_no_page_names_a_path_of_one_machine(path: Path) -> None:
    assert not re.search(r"(?<![\w.])/(work|home/\w+|Users/\w+|root)/", path.read_text())


def test_the_factory_recipe_gives_the_public_url_of_its_own_listener() -> None:
    cli = (ROOT / "docs" / "cli.md").read_text()
    recipe = next(block for block in fenced_blocks(cli, "bash") if "uvicorn --factory" in block)
    public = re.search(r"MCP_OAUTH_SHIM_PUBLIC_URL=(\S+)", recipe)
    port = re.search(r"--port (\d+)", recipe)
    assert public and port, recipe
    assert urlsplit(public.group(1)).port == int(port.group(1))


@pytest.mark.parametrize("block", fenced_blocks(CONNECT, "json"), ids=lambda b: b.split('"')[1])
def test_every_client_configuration_is_valid_json_naming_the_mcp_url(block: str) -> None:
    assert "https://api.example.com/mcp" in json.dumps(json.loads(block))


@pytest.mark.parametrize(
    "snippet",
    [
        '"mcpServers"',
        "npx -y mcp-remote@0.15.1 https://api.example.com/mcp",
        "claude mcp add --transport http my-api https://api.example.com/mcp",
        ".vscode/mcp.json",
        "~/.cursor/mcp.json",
        "ChatGPT",
        "npx @modelcontextprotocol/inspector",
    ],
)
def test_connect_clients_covers_each_client(snippet: str) -> None:
    assert snippet in CONNECT


# The documented redirect URIs, with a concrete value where the page shows a placeholder.
REDIRECT_URIS = [
    ("http://localhost:<port>/oauth/callback", "http://localhost:3335/oauth/callback"),
    ("https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback"),
    ("http://127.0.0.1:33418", "http://127.0.0.1:33418"),
    ("https://vscode.dev/redirect", "https://vscode.dev/redirect"),
    ("cursor://...", "cursor://anysphere.cursor-mcp/oauth/callback"),
    ("https://chatgpt.com/connector/oauth/<id>", "https://chatgpt.com/connector/oauth/abc123"),
    ("http://127.0.0.1:6276/oauth/callback", "http://127.0.0.1:6276/oauth/callback"),
]


@pytest.mark.parametrize(("documented", "concrete"), REDIRECT_URIS, ids=[d for d, _ in REDIRECT_URIS])
def test_each_documented_redirect_uri_is_registered_by_a_default_shim(documented: str, concrete: str) -> None:
    assert f"`{documented}`" in CONNECT
    shim = OAuthShim(
        public_url="https://api.example.com",
        upstream=Upstream.oidc(
            issuer="https://idp.example",
            client_id="shim",
            client_secret="a-secret",
            authorization_endpoint="https://idp.example/authorize",
            token_endpoint="https://idp.example/token",
        ),
        secret_keys=["k" * 48],
    )
    response = TestClient(shim.app, base_url="https://api.example.com").post(
        "/oauth/register", json={"redirect_uris": [concrete], "client_name": documented}
    )
    assert response.status_code == 201, response.text

"""The identity-provider guides (docs/idp/*.md) say what the code does: each page's `.env`
and Python snippet build a shim for that IdP in the token mode the page names, and every
setting they name exists."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from mcp_oauth_shim.cli import SERVE_OPTIONS
from mcp_oauth_shim.context import Paths

GUIDES = Path(__file__).resolve().parents[1] / "docs" / "idp"
# page -> (Upstream.name, issued-token mode)
PAGES = {
    "auth0.md": ("auth0", False),
    "keycloak.md": ("keycloak", False),
    "okta.md": ("okta", False),
    "entra.md": ("entra", False),
    "google.md": ("google", True),
    "github.md": ("github", True),
    "cognito.md": ("cognito", True),
}


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def dotenv(block: str) -> dict[str, str]:
    """The variables of a `.env` block; `...` placeholders get a throwaway value."""
    env = {}
    for line in block.splitlines():
        name, _, value = line.split("#")[0].strip().partition("=")
        if name:
            env[name] = value.strip() if value.strip() != "..." else secrets.token_urlsafe(48)
    return env


def test_every_guide_is_checked() -> None:
    assert sorted(p.name for p in GUIDES.glob("*.md") if p.name != "index.md") == sorted(PAGES)


@pytest.mark.parametrize(("page", "expected"), PAGES.items(), ids=list(PAGES))
def test_guide_snippet_builds_the_shim_it_describes(
    page: str, expected: tuple[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (GUIDES / page).read_text()
    (env_block,) = fenced(text, "dotenv")
    for name, value in dotenv(env_block).items():
        monkeypatch.setenv(name, value)
    snippet = next(block for block in fenced(text, "python") if "OAuthShim(" in block)
    namespace: dict[str, object] = {}
    exec(compile(snippet, page, "exec"), namespace)
    shim = namespace["shim"]
    name, issued = expected
    assert (shim.upstream.name, shim.upstream.resolve_issue_tokens()) == (name, issued)  # type: ignore[attr-defined]


@pytest.mark.parametrize("page", sorted(PAGES), ids=sorted(PAGES))
def test_guide_names_the_callback_the_shim_serves(page: str) -> None:
    assert f"https://api.example.com{Paths().callback}" in (GUIDES / page).read_text()


@pytest.mark.parametrize("page", sorted([*PAGES, "index.md"]))
def test_guide_names_only_variables_of_the_command_line(page: str) -> None:
    known = {option.env for option in SERVE_OPTIONS}
    unknown = set(re.findall(r"MCP_OAUTH_SHIM_[A-Z_]+", (GUIDES / page).read_text())) - known
    assert not unknown, sorted(unknown)


@pytest.mark.parametrize(("page", "expected"), PAGES.items(), ids=list(PAGES))
def test_guide_states_the_token_mode_of_its_preset(page: str, expected: tuple[str, bool]) -> None:
    mode = "issued" if expected[1] else "passthrough"
    assert f"**Token mode: {mode}.**" in (GUIDES / page).read_text()

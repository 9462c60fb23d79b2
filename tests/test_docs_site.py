"""The documentation site builds with `mkdocs build --strict` (no broken link or anchor, no
page left out of the navigation) and its API reference documents every public name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mcp_bridge
import mcp_oauth_shim

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # Material's end-of-life banner on stderr is noise here.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"), "-d", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_site_builds_strictly_with_a_home_page(site: Path) -> None:
    assert "mcp-oauth-shim" in (site / "index.html").read_text()


@pytest.mark.parametrize(
    "name",
    [f"mcp_oauth_shim.{n}" for n in mcp_oauth_shim.__all__] + [f"mcp_bridge.{n}" for n in mcp_bridge.__all__],
)
def test_api_reference_documents_public_name(site: Path, name: str) -> None:
    # mkdocstrings gives every documented object an anchor with its full dotted path.
    assert f'id="{name}"' in (site / "api" / "index.html").read_text(), f"{name} is missing from docs/api.md"


def test_changelog_page_shows_the_repository_changelog(site: Path) -> None:
    first_heading = next(line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    assert first_heading.removeprefix("## ").strip("[]") in (site / "changelog" / "index.html").read_text()

"""The source tree keeps the rules of docs/architecture.md: its module map names every module,
and no module reaches into another module's private names."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("mcp_oauth_shim", "mcp_bridge")


def library_modules() -> list[str]:
    """Every module of both packages, as a path relative to the repository root."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append(path.relative_to(ROOT).as_posix())
    return found


def test_the_module_map_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:mcp_oauth_shim|mcp_bridge)/[\w/]+\.py)`", text))
    missing = [m for m in library_modules() if m not in named and not m.endswith("__init__.py")]
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_module_map_names_only_modules_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:mcp_oauth_shim|mcp_bridge)/[\w/]+\.py)`", text))
    assert named <= set(library_modules())


@pytest.mark.parametrize("module", library_modules())
def test_no_module_imports_another_modules_private_names(module):
    tree = ast.parse((ROOT / module).read_text())
    private = [
        f"from {node.module or '.'} import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not private, private


@pytest.mark.parametrize("module", library_modules())
def test_no_module_points_at_documents_outside_the_repository(module):
    text = (ROOT / module).read_text()
    assert not re.search(r"DESIGN\.md|PEERS\.md|\bissue \d+\b", text)

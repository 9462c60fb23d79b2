"""Process plumbing shared by the peers: bounded start-up, bounded stop, log tails."""

from __future__ import annotations

import selectors
import subprocess
import time
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

"""A `$BROWSER` for clients that open the authorization URL themselves (mcp-remote).

mcp-remote opens the URL through npm `open` -> `xdg-open`, which without a desktop runs
`$BROWSER <url>` and waits for it. So the command must return at once; a detached child then
logs in with the headless browser and delivers the redirect to the client's loopback callback
(RFC 8252 §7.3), retrying until that port listens, because mcp-remote opens the browser before
its callback server is up.

    browser_cli.py URL            (what xdg-open runs) start the follower, exit 0
    browser_cli.py --follow URL   (the detached child) log in, deliver the callback

The child appends query-free progress lines to $MCP_TEST_BROWSER_LOG and its pid to
$MCP_TEST_BROWSER_LOG.pids so the test can stop it; it gives up by itself after a deadline.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

if __package__:
    from .browser import BrowserError, LoginTrace, follow_login, new_browser_client
else:  # run as a script by xdg-open
    from browser import BrowserError, LoginTrace, follow_login, new_browser_client  # type: ignore[no-redef]

LOG_ENV = "MCP_TEST_BROWSER_LOG"
_DEADLINE_S = 90.0
_CALLBACK_RETRY_S = 0.2


def _log(line: str) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as log:
            log.write(f"[browser {os.getpid()}] {line}\n")


def _deliver(final_url: str, deadline: float) -> int:
    """GET the client's callback, waiting (bounded) for its server to listen."""
    with httpx.Client(timeout=15.0, follow_redirects=False) as http:
        while True:
            try:
                return http.get(final_url).status_code
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(_CALLBACK_RETRY_S)


def follow(url: str) -> int:
    deadline = time.monotonic() + _DEADLINE_S
    trace = LoginTrace()
    try:
        with new_browser_client() as client:
            final_url = follow_login(url, client=client, trace=trace, deadline_s=_DEADLINE_S)
        _log("login steps:\n" + str(trace))
        status = _deliver(final_url, deadline)
        _log(f"client callback answered {status}")
        return 0
    except (BrowserError, httpx.HTTPError) as exc:
        _log(f"failed: {exc!r}\nsteps:\n{trace}")
        return 1


def spawn_follower(url: str) -> int:
    log_path = os.environ.get(LOG_ENV)
    sink = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--follow", url],
        stdin=subprocess.DEVNULL,
        stdout=sink,
        stderr=sink,
        start_new_session=True,
    )
    if log_path:
        with open(log_path + ".pids", "a") as pids:
            pids.write(f"{child.pid}\n")
    return 0


@dataclass(frozen=True)
class BrowserCommand:
    """A `$BROWSER` value for a client process, and where its follower logs."""

    command: Path
    log: Path

    def env(self) -> dict[str, str]:
        return {"BROWSER": str(self.command), LOG_ENV: str(self.log)}

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(the browser was never opened)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop_followers(self) -> None:
        """Stop followers still running (a failed test); they are ours, by pid."""
        pids = Path(str(self.log) + ".pids")
        if not pids.exists():
            return
        for line in pids.read_text().split():
            try:
                os.kill(int(line), 15)
            except ProcessLookupError:
                pass


def install_browser_command(directory: Path) -> BrowserCommand:
    """Write an executable wrapper into `directory` (xdg-open splits $BROWSER on ':' and
    word-splits it, so it must be one plain path) that runs this script with our Python."""
    directory.mkdir(parents=True, exist_ok=True)
    command = directory / "headless-browser"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$1"\n')
    command.chmod(command.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return BrowserCommand(command=command, log=directory / "browser.log")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--follow":
        return follow(argv[1])
    if len(argv) == 1:
        return spawn_follower(argv[0])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A real redis-server (Debian's `redis-server` package) on loopback, for the strict-mode tests.

Started with persistence off (`--save '' --appendonly no`) in a temporary directory, on a port
chosen by the kernel a moment before; ready once it answers PING. In CI (CI=true) the tests
always run (.ci/run installs redis-server), so a missing server fails there instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from .procs import PeerStartError, stop, tail
from .servers import free_port

REDIS_SERVER = "redis-server"
_START_TIMEOUT_S = 15.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_reason() -> str | None:
    """Why the Redis tests cannot run here, or None. In CI they always run."""
    if shutil.which(REDIS_SERVER) or in_ci():
        return None
    return "redis-server is absent: install Debian's redis-server (apt-get install -y redis-server) to run the strict-mode tests"


@dataclass
class RedisServer:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client, to look at what the code under test stored."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _wait_for_ping(server: RedisServer) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    with server.client() as client:
        while True:
            if server.process.poll() is not None:
                raise PeerStartError(f"redis-server exited with {server.process.returncode}; log tail:\n{tail(server.log)}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise PeerStartError(f"redis-server did not answer PING within {_START_TIMEOUT_S}s; log tail:\n{tail(server.log)}")
            time.sleep(0.05)


@contextmanager
def run_redis(workdir: Path, port: int | None = None) -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 for the duration of the block, stopped after it."""
    port = port or free_port()
    log = workdir / f"redis-{port}.log"
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(log),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RedisServer(process, port, log)
    try:
        _wait_for_ping(server)
        yield server
    finally:
        stop(process)

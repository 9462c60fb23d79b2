"""Server processes for the benchmarks: start pinned to a core, wait until ready, read their cost.

CPU time comes from ``/proc/<pid>/stat`` (fields 14 and 15, utime + stime, all threads; see
proc(5)); resident memory from ``VmRSS`` in ``/proc/<pid>/status``. Processes are started with
``python -m bench.serve`` so every server runs under the same uvicorn configuration.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Read once at import: the harness later pins itself to one of these.
_CORES = sorted(os.sched_getaffinity(0))


def cores() -> list[int]:
    return list(_CORES)


def server_core() -> int | None:
    """The core servers run on (the first one) when there are two or more; else no pinning."""
    cs = cores()
    return cs[0] if len(cs) >= 2 else None


def pin_self_to_load_core() -> int | None:
    """Pin the calling process (the load generator) to the last core, away from the servers."""
    cs = cores()
    if len(cs) < 2:
        return None
    os.sched_setaffinity(0, {cs[-1]})
    return cs[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process, in seconds (proc(5) fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = data[data.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Server:
    """A running ``bench.serve`` process."""

    target: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    started_at: float
    options: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(
    target: str,
    *,
    options: Mapping[str, str] | None = None,
    core: int | None = -1,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = 60.0,
) -> Server:
    """Start ``python -m bench.serve TARGET`` on a fresh loopback port, pinned to ``core``.

    ``core=-1`` means the server core; ``None`` leaves the process unpinned.
    """
    port = free_port()
    opts = dict(options or {})
    args: list[str] = [sys.executable, "-m", "bench.serve", target, "--port", str(port)]
    for k, v in opts.items():
        args += ["--opt", f"{k}={v}"]
    pin = server_core() if core == -1 else core
    if pin is not None:
        args += ["--core", str(pin)]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{target}-{port}.log"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(target=target, port=port, proc=proc, log=log, started_at=t0, options=opts)
    if wait:
        wait_listening(server, timeout)
    return server


def wait_listening(server: Server, timeout: float = 60.0) -> float:
    """Block until the server accepts TCP connections; seconds since spawn."""
    deadline = time.perf_counter() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.target} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                return time.perf_counter() - server.started_at
        except OSError as exc:
            if time.perf_counter() > deadline:
                server.stop()
                raise RuntimeError(f"{server.target} did not listen within {timeout}s:\n{server.log_tail()}") from exc
            time.sleep(0.01)


def stop_all(servers: Sequence[Server]) -> None:
    for s in servers:
        s.stop()

"""Run settings and shared helpers for the scenarios: spawning servers, interleaved rounds."""

from __future__ import annotations

import importlib.util
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.loadgen import Check
from bench.measure import CheckFailed, Figure, Sample, fmt_figure, measure, summarize

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Case:
    """One configuration to measure in each round."""

    label: str
    server: procs.Server
    requests: Sequence[bytes]
    check: Check
    concurrency: int
    unique: bool = False
    # Built fresh per round (e.g. single-use codes); overrides ``requests`` when set.
    make_requests: Callable[[], Sequence[bytes]] | None = None


@dataclass
class Ctx:
    rounds: int = 3
    duration: float = 2.0
    warmup: float = 0.5
    quick: bool = False
    only: set[str] = field(default_factory=set)
    log_dir: Path = RESULTS / "logs"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    servers: list[procs.Server] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def spawn(self, target: str, **options: Any) -> procs.Server:
        core = options.pop("_core", -1)
        wait = options.pop("_wait", True)
        env = {"BENCH_SECRET_KEY": self.secret_key}
        s = procs.spawn(
            target,
            options={k: str(v) for k, v in options.items()},
            core=core,
            log_dir=self.log_dir,
            env=env,
            wait=wait,
        )
        self.servers.append(s)
        return s

    def stop(self, *servers: procs.Server) -> None:
        for s in servers:
            s.stop()
            if s in self.servers:
                self.servers.remove(s)

    def stop_all(self) -> None:
        self.stop(*list(self.servers))

    def compare(self, cases: Sequence[Case], *, duration: float | None = None) -> dict[str, Figure]:
        """Measure every case once per round, interleaved; medians per case."""
        samples: dict[str, list[Sample]] = {c.label: [] for c in cases}
        for _ in range(self.rounds):
            for c in cases:
                reqs = c.make_requests() if c.make_requests else c.requests
                s = measure(
                    c.server,
                    reqs,
                    c.check,
                    concurrency=c.concurrency,
                    duration=duration or self.duration,
                    warmup=self.warmup,
                    unique=c.unique,
                )
                if s.errors or s.requests == 0:
                    raise CheckFailed(
                        f"{c.label}: {s.errors} of {s.requests} responses failed their check; "
                        f"first: {s.bad_samples[:2]}\nserver log:\n{c.server.log_tail(15)}"
                    )
                samples[c.label].append(s)
        out = {}
        for c in cases:
            f = summarize(c.label, samples[c.label])
            self.figures[c.label] = f
            self.log("  " + fmt_figure(f))
            out[c.label] = f
        return out


def available(module: str) -> bool:
    """Whether ``module`` imports (the bridge and shim are written in parallel with the bench)."""
    try:
        return importlib.util.find_spec(module) is not None and _imports(module)
    except ImportError:
        return False


def _imports(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:  # noqa: BLE001 - a half-written package is "not available yet", whatever it raises
        return False


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.005) -> float:
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
    return time.perf_counter() - t0

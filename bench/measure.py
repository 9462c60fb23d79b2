"""One measurement = one load run against one server, with the server's CPU and memory read
around it; several rounds are interleaved (baseline, candidate, baseline, ...) so slow drift of
a shared machine hits both sides, and the figures are medians over rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from bench.loadgen import Check, LoadResult, run_load_sync
from bench.procs import Server


@dataclass
class Sample:
    """One load run, reduced to the figures we report (times in milliseconds)."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    rss_mib: float
    requests: int
    errors: int
    client_cpu_ms_per_req: float
    # Share of the window the load generator's process was on CPU: near 1.0 means the client,
    # not the server, may have set the pace.
    client_busy: float = 0.0
    bad_samples: list[str] = field(default_factory=list)


@dataclass
class Figure:
    """Medians over rounds for one configuration; ``samples`` keeps every round."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    rss_mib: float
    errors: int
    requests: int
    client_cpu_ms_per_req: float
    client_busy: float
    samples: list[Sample]

    def to_json(self) -> dict:
        d = asdict(self)
        return d


class CheckFailed(RuntimeError):
    """A response failed its check: the figure would be meaningless."""


def measure(
    server: Server,
    requests: Sequence[bytes],
    check: Check,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    unique: bool = False,
) -> Sample:
    """Load ``server`` for ``warmup + duration`` seconds and read its CPU time around the run."""
    cpu0 = server.cpu()
    res: LoadResult = run_load_sync(
        "127.0.0.1",
        server.port,
        requests,
        check,
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        unique=unique,
    )
    cpu1 = server.cpu()
    # The warmup's requests are not counted; scale CPU to the recorded window's share of the
    # total time so CPU/request is not inflated by the warmup.
    total_time = res.elapsed + warmup
    share = res.elapsed / total_time if total_time > 0 else 1.0
    server_cpu = (cpu1 - cpu0) * share
    n = max(res.requests, 1)
    return Sample(
        rps=res.rps,
        p50_ms=res.percentile(50) * 1e3,
        p99_ms=res.percentile(99) * 1e3,
        cpu_ms_per_req=server_cpu / n * 1e3,
        rss_mib=server.rss() / 2**20,
        requests=res.requests,
        errors=res.errors,
        client_cpu_ms_per_req=res.client_cpu * share / n * 1e3,
        client_busy=res.client_cpu / (res.elapsed + warmup) if res.elapsed + warmup > 0 else 0.0,
        bad_samples=[f"{s} {b[:300]!r}" for s, b in res.bad_samples],
    )


def summarize(name: str, samples: list[Sample]) -> Figure:
    med = statistics.median
    return Figure(
        name=name,
        rps=med(s.rps for s in samples),
        p50_ms=med(s.p50_ms for s in samples),
        p99_ms=med(s.p99_ms for s in samples),
        cpu_ms_per_req=med(s.cpu_ms_per_req for s in samples),
        rss_mib=max(s.rss_mib for s in samples),
        errors=sum(s.errors for s in samples),
        requests=sum(s.requests for s in samples),
        client_cpu_ms_per_req=med(s.client_cpu_ms_per_req for s in samples),
        client_busy=max(s.client_busy for s in samples),
        samples=samples,
    )


def fmt_figure(f: Figure) -> str:
    return (
        f"{f.name:<44} {f.rps:>9.0f} req/s  p50 {f.p50_ms:7.3f} ms  p99 {f.p99_ms:7.3f} ms  "
        f"cpu {f.cpu_ms_per_req:6.3f} ms/req  rss {f.rss_mib:6.1f} MiB  client busy {f.client_busy:4.0%}  err {f.errors}"
    )

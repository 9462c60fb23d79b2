"""A small HTTP/1.1 keep-alive load generator built on asyncio protocols.

Why not httpx: it spends ~100 µs of client CPU per request, more than the servers measured
here spend answering. This client sends pre-encoded request bytes over persistent
connections (RFC 9112 §9.3), one request in flight per connection (no pipelining), and parses
only what it must: the status line, ``Content-Length`` (RFC 9112 §6.3) or ``chunked``
transfer coding (RFC 9112 §7.1). Every response is checked (status and a body predicate);
a failed check is counted and the first few bodies are kept for the report.

Each connection cycles through its own slice of ``requests``. When ``unique=True`` every
request is sent at most once (for single-use payloads such as authorization codes) and the run
ends early when they are used up.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

try:  # uvloop keeps the client's own per-request cost low; plain asyncio works too.
    import uvloop
except ImportError:  # pragma: no cover - depends on the environment
    uvloop = None

Check = Callable[[int, bytes], bool]


def expect(status: int | tuple[int, ...] = 200, contains: bytes | None = None, excludes: bytes | None = None) -> Check:
    """A response check: status in the allowed set, body containing / not containing a marker."""
    allowed = (status,) if isinstance(status, int) else tuple(status)

    def check(code: int, body: bytes) -> bool:
        if code not in allowed:
            return False
        if contains is not None and contains not in body:
            return False
        if excludes is not None and excludes in body:
            return False
        return True

    return check


@dataclass
class LoadResult:
    """Raw outcome of one load run; latencies are in seconds, sorted."""

    requests: int
    errors: int
    elapsed: float
    latencies: list[float]
    client_cpu: float
    bad_samples: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the recorded latencies (seconds)."""
        if not self.latencies:
            return float("nan")
        k = max(0, min(len(self.latencies) - 1, int(round(p / 100.0 * len(self.latencies) + 0.5)) - 1))
        return self.latencies[k]


class _ResponseError(Exception):
    pass


class _Conn(asyncio.Protocol):
    """One keep-alive connection; ``send`` returns a future of (status, body)."""

    __slots__ = ("transport", "buf", "fut", "closed", "_need", "_status", "_chunked", "_body_start", "_close_after")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._status = -1
        self._need = -1
        self._chunked = False
        self._body_start = -1
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(_ResponseError("connection closed before the response ended"))

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.fut = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self._body_start < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(buf[:end]))
            self._body_start = end + 4
        if self._chunked:
            body = self._dechunk()
            if body is None:
                return
        else:
            end = self._body_start + self._need
            if len(buf) < end:
                return
            with memoryview(buf) as view:  # one copy of the body, not two
                body = view[self._body_start : end].tobytes()
            del buf[:end]
        status, close = self._status, self._close_after
        self._reset()
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_result((status, body))
        if close and self.transport is not None:
            self.transport.close()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self._status = int(lines[0].split(b" ", 2)[1])
        self._need = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._need = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
            elif name == b"connection" and b"close" in value.lower():
                self._close_after = True

    def _dechunk(self) -> bytes | None:
        """Whole chunked body once its last chunk and trailer section arrived, else None."""
        buf = self.buf
        pos = self._body_start
        parts: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return None
                del buf[: end + 4]
                return b"".join(parts)
            start = eol + 2
            if len(buf) < start + size + 2:
                return None
            parts.append(bytes(buf[start : start + size]))
            pos = start + size + 2


async def _connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Conn, host, port)
    return proto


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    check: Check,
    *,
    concurrency: int = 1,
    duration: float = 2.0,
    warmup: float = 0.3,
    unique: bool = False,
    max_bad_samples: int = 3,
) -> LoadResult:
    """Drive ``concurrency`` connections for ``warmup + duration`` seconds; record the last part."""
    conns = [await _connect(host, port) for _ in range(concurrency)]
    latencies: list[float] = []
    bad: list[tuple[int, bytes]] = []
    counters = {"n": 0, "err": 0}
    loop_time = time.perf_counter
    t_start = loop_time()
    t_record = t_start + warmup
    t_end = t_record + duration
    shared_index = [0]

    async def worker(idx: int) -> None:
        conn = conns[idx]
        mine = requests[idx::concurrency] if not unique else None
        i = 0
        record = latencies.append
        while True:
            now = loop_time()
            if now >= t_end:
                return
            if unique:
                j = shared_index[0]
                if j >= len(requests):
                    return
                shared_index[0] = j + 1
                data = requests[j]
            else:
                assert mine is not None
                data = mine[i % len(mine)] if mine else requests[i % len(requests)]
                i += 1
            if conn.closed:
                conn = conns[idx] = await _connect(host, port)
            t0 = loop_time()
            try:
                status, body = await conn.send(data)
            except _ResponseError:
                status, body = -1, b"connection closed"
            t1 = loop_time()
            ok = check(status, body)
            if t0 >= t_record:
                counters["n"] += 1
                record(t1 - t0)
                if not ok:
                    counters["err"] += 1
            if not ok and len(bad) < max_bad_samples:
                bad.append((status, body[:500]))

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    t_done = loop_time()
    cpu1 = time.process_time()
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    latencies.sort()
    elapsed = min(t_done, t_end) - t_record if not unique else t_done - t_record
    return LoadResult(
        requests=counters["n"],
        errors=counters["err"],
        elapsed=max(elapsed, 1e-9),
        latencies=latencies,
        client_cpu=cpu1 - cpu0,
        bad_samples=bad,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (documented in bench/README.md), else asyncio's."""
    if uvloop is not None and os.environ.get("BENCH_NO_UVLOOP") != "1":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_load_sync(*args: object, **kwargs: object) -> LoadResult:
    """Run :func:`run_load` on a fresh event loop (the harness itself is synchronous)."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(run_load(*args, **kwargs))  # type: ignore[arg-type]
    finally:
        loop.close()


def encode_request(
    method: str,
    path: str,
    *,
    host: str = "127.0.0.1",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """Pre-encode one HTTP/1.1 request (RFC 9112 §3) with ``Content-Length`` when it has a body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")

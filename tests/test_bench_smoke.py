"""Smoke tests of the benchmark harness (bench/): it runs, and it checks every response.

No timing is asserted anywhere: figures on a shared machine are noise; these tests only show
that the harness works end to end and that the load generator rejects wrong answers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from bench.loadgen import encode_request, expect, run_load_sync  # noqa: E402


@pytest.fixture(scope="module")
def trivial_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Server]:
    server = procs.spawn("trivial", core=None, log_dir=tmp_path_factory.mktemp("logs"))
    try:
        yield server
    finally:
        server.stop()


def _get(server: procs.Server) -> list[bytes]:
    return [encode_request("GET", "/", host=f"127.0.0.1:{server.port}")]


def test_quick_run_on_the_trivial_app_writes_checked_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--only", "floor", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload["errors"] == {}
    figures = payload["figures"]
    assert set(figures) == {"trivial c=1", "trivial c=16"}
    for fig in figures.values():
        assert fig["requests"] > 0 and fig["errors"] == 0


def test_correct_answers_pass_the_check(trivial_server: procs.Server) -> None:
    res = run_load_sync(
        "127.0.0.1",
        trivial_server.port,
        _get(trivial_server),
        expect(200, contains=b"ok"),
        concurrency=4,
        duration=0.2,
        warmup=0.05,
    )
    assert res.requests > 0 and res.errors == 0


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(expect(201), id="wrong-status"),
        pytest.param(expect(200, contains=b"not-in-body"), id="missing-marker"),
        pytest.param(expect(200, excludes=b"ok"), id="forbidden-marker"),
    ],
)
def test_wrong_answers_are_counted_as_errors(trivial_server: procs.Server, check) -> None:
    res = run_load_sync(
        "127.0.0.1", trivial_server.port, _get(trivial_server), check, concurrency=2, duration=0.2, warmup=0.05
    )
    assert res.requests > 0 and res.errors == res.requests
    assert res.bad_samples and res.bad_samples[0][1] == b"ok"


def _chunked_server() -> tuple[int, asyncio.AbstractEventLoop, threading.Thread]:
    """A raw HTTP/1.1 server answering with a chunked body split across several writes."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port_box: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                await writer.drain()
                writer.write(b"6;ext=1\r\n world\r\n0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def start() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_box.append(srv.sockets[0].getsockname()[1])
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    return port_box[0], loop, t


def test_chunked_bodies_are_reassembled() -> None:
    port, loop, thread = _chunked_server()
    try:
        req = [encode_request("GET", "/", host=f"127.0.0.1:{port}")]
        res = run_load_sync(
            "127.0.0.1", port, req, expect(200, contains=b"hello world"), concurrency=2, duration=0.2, warmup=0.05
        )
        assert res.requests > 0 and res.errors == 0
    finally:
        asyncio.run_coroutine_threadsafe(_shutdown(loop), loop).result(10)
        thread.join(5)
        loop.close()


async def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop.call_soon(loop.stop)


def test_the_in_process_oauth_measurement_runs_a_real_flow_and_checks_answers() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/inproc_oauth.py", "--calls", "20", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("trivial", "authorize", "callback", "token"):
        assert f"  {name}" in proc.stdout

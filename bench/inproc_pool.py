"""Client-side cost of the IdP pool (``mcp_oauth_shim.upstream.pool``) per token POST.

``python bench/inproc_pool.py [--requests 20000] [--rounds 3] [--concurrency 1 16]``

A stub IdP in a child process answers every POST with the bench's fixed token answer
(``bench.targets.TOKEN_RESPONSE``, Content-Length, kept alive) on loopback; this process sends
``--requests`` POSTs through one :class:`ConnectionPool` under uvloop with ``c`` requests in
flight, and reports the pool's CPU time per request (``time.process_time``: this process
only, the stub's work excluded) and the rate. Medians of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.targets import TOKEN_RESPONSE  # noqa: E402

BODY = b"grant_type=refresh_token&refresh_token=" + b"r" * 60 + b"&client_id=shim&client_secret=s3cret"
HEADERS = [("Accept", "application/json"), ("Content-Type", "application/x-www-form-urlencoded")]


def _stub(port_out: multiprocessing.connection.Connection) -> None:
    import uvloop

    token = TOKEN_RESPONSE.encode() if isinstance(TOKEN_RESPONSE, str) else TOKEN_RESPONSE
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: %d\r\n\r\n%s" % (
        len(token),
        token,
    )

    class Stub(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while True:  # the client's requests: fixed head, Content-Length last
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = int(self.buffer[: end].rsplit(b"Content-Length: ", 1)[1])
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                self.transport.write(answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Stub, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


async def _round(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    from mcp_oauth_shim.upstream.pool import ConnectionPool

    pool = ConnectionPool(timeout=10)
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            response = await pool.request("POST", url, body=BODY, headers=HEADERS)
            assert response.status == 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm: connections open
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await pool.aclose()
    done = per_worker * concurrency
    return cpu / done * 1e6, done / wall


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    receive, send = multiprocessing.Pipe(duplex=False)
    stub = multiprocessing.Process(target=_stub, args=(send,), daemon=True)
    stub.start()
    url = f"http://127.0.0.1:{receive.recv()}/token"
    try:
        for concurrency in args.concurrency:
            results = [uvloop.run(_round(url, args.requests, concurrency)) for _ in range(args.rounds)]
            cpu = statistics.median(r[0] for r in results)
            rate = statistics.median(r[1] for r in results)
            print(f"c={concurrency:<3} pool CPU {cpu:6.1f} us/request   {rate:8.0f} requests/s")
    finally:
        stub.terminate()
        stub.join()


if __name__ == "__main__":
    main()

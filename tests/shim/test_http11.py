"""The lean HTTP/1.1 pool for POSTs to the IdP, against real loopback servers that misbehave
on purpose (fault injection over real sockets rather than a mocked transport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.http11 import ConnectionPool, HTTPError
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> str:
        async def serve(reader, writer):
            self.connections += 1
            try:
                await self.handler(reader, writer, {"server": self})
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/token"

    async def __aexit__(self, *exc) -> None:
        self._server.close()


def answering(*responses: bytes, keep_open: bool = True) -> Handler:
    async def handler(reader, writer, ctx):
        for response in responses:
            ctx["server"].requests.append(await _read_request(reader))
            writer.write(response)
            await writer.drain()
        if keep_open:
            await reader.read()  # until the client closes

    return handler


async def silent(reader, writer, ctx):
    """Reads the request and never answers."""
    await _read_request(reader)
    await asyncio.sleep(10)


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":"ok"}\n'


async def test_content_length_response_and_connection_reuse():
    server = Server(answering(OK, OK, OK))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        for _ in range(3):
            response = await pool.request("POST", url, body=b"x=1", headers=[("Accept", "application/json")])
            assert (response.status, response.body) == (200, b'{"a":"ok"}\n')
        await pool.aclose()
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.requests[0].endswith(b"\r\n\r\nx=1")


async def test_chunked_response_with_trailers():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n5\r\n:\"b\"}\r\n0\r\nX-Trailer: y\r\n\r\n"
    async with Server(answering(chunked, OK)) as url:
        pool = ConnectionPool(timeout=5)
        assert (await pool.request("POST", url)).body == b'{"a":"b"}'
        assert (await pool.request("POST", url)).status == 200  # framing left the connection clean
        await pool.aclose()


async def test_unframed_response_reads_until_close_and_is_not_reused():
    server = Server(answering(b"HTTP/1.1 200 OK\r\n\r\n{}", keep_open=False))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        assert (await pool.request("POST", url)).body == b"{}"
        assert (await pool.request("POST", url)).body == b"{}"
        await pool.aclose()
    assert server.connections == 2


async def test_connection_close_header_prevents_reuse():
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = Server(answering(close, keep_open=False))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        await pool.request("POST", url)
        await pool.request("POST", url)
        await pool.aclose()
    assert server.connections == 2


async def test_idle_connection_closed_by_the_peer_is_retried_on_a_fresh_one():
    server = Server(answering(OK, keep_open=False))  # answers once, then closes
    async with server as url:
        pool = ConnectionPool(timeout=5)
        await pool.request("POST", url)
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()
    assert server.connections == 2


async def test_interim_100_continue_is_skipped():
    response = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with Server(answering(response)) as url:
        pool = ConnectionPool(timeout=5)
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()


BROKEN = [
    b"HELLO WORLD\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n Bad-Header: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # closed before the body is complete
]


@pytest.mark.parametrize("response", BROKEN)
async def test_malformed_answers_are_errors_not_crashes(response):
    async with Server(answering(response, keep_open=False)) as url:
        pool = ConnectionPool(timeout=5)
        with pytest.raises(HTTPError):
            await pool.request("POST", url)
        await pool.aclose()


async def test_a_silent_peer_times_out_within_the_bound():
    async with Server(silent) as url:
        pool = ConnectionPool(timeout=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.request("POST", url)
        assert loop.time() - started < 3
        await pool.aclose()


async def test_a_slow_peer_within_the_bound_is_not_cut_off():
    async def slow(reader, writer, ctx):
        await _read_request(reader)
        await asyncio.sleep(0.3)  # two watchdog ticks, less than the timeout
        writer.write(OK)
        await writer.drain()
        await reader.read()

    async with Server(slow) as url:
        pool = ConnectionPool(timeout=0.8)
        assert (await pool.request("POST", url)).body == b'{"a":"ok"}\n'
        await pool.aclose()


async def test_after_a_timeout_the_next_request_gets_a_fresh_connection():
    async def silent_then_answering(reader, writer, ctx):
        if ctx["server"].connections == 1:
            await silent(reader, writer, ctx)
        await answering(OK)(reader, writer, ctx)

    server = Server(silent_then_answering)
    async with server as url:
        pool = ConnectionPool(timeout=0.3)
        with pytest.raises(TimeoutError):
            await pool.request("POST", url)
        assert (await pool.request("POST", url)).status == 200
        assert server.connections == 2
        await pool.aclose()


async def test_timeouts_still_fire_when_the_pool_moves_to_another_event_loop():
    """One shim, several event loops (test suites, servers restarted in one process): a loop
    that ended with the watchdog still scheduled must not leave the next one without it."""
    pool = ConnectionPool(timeout=0.3)

    async def quick_answer() -> None:
        async with Server(answering(OK)) as url:
            await pool.request("POST", url)  # the loop ends right after, watchdog pending

    async def silent_peer() -> float:
        async with Server(silent) as url:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await asyncio.wait_for(pool.request("POST", url), 3)
            except TimeoutError:
                return loop.time() - started
            raise AssertionError("no timeout")

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, asyncio.run, quick_answer())
    assert await loop.run_in_executor(None, asyncio.run, silent_peer()) < 2


async def test_a_peer_that_closes_a_fresh_connection_without_answering_is_an_error():
    async def hang_up(reader, writer, ctx):
        await _read_request(reader)

    async with Server(hang_up) as url:
        with pytest.raises(HTTPError):
            await ConnectionPool(timeout=5).request("POST", url)


async def test_refused_connection_is_an_error():
    with pytest.raises(HTTPError):
        await ConnectionPool(timeout=5).request("POST", "http://127.0.0.1:9/token")


@pytest.mark.parametrize("url", ["ftp://idp.example/token", "http:///token", "http://idp.example/a b"])
async def test_unusable_urls_are_refused(url):
    with pytest.raises(HTTPError):
        await ConnectionPool(timeout=5).request("POST", url)


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        (answering(b"garbage\r\n\r\n", keep_open=False), 502),
        (answering(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>"), 502),
        (answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"), 502),
    ],
)
async def test_upstream_client_maps_pool_failures_to_502(handler, status):
    async with Server(handler) as url:
        client = UpstreamClient(Upstream.oidc(client_id="c", client_secret="s", authorization_endpoint=url, token_endpoint=url))
        with pytest.raises(UpstreamError) as exc:
            await client.post_form(url, {"grant_type": "refresh_token"})
        assert exc.value.status_code == status
        await client.aclose()


async def test_upstream_client_maps_a_slow_idp_to_504():
    async with Server(silent) as url:
        upstream = Upstream.oidc(client_id="c", client_secret="s", authorization_endpoint=url, token_endpoint=url, timeout=0.3)
        client = UpstreamClient(upstream)
        with pytest.raises(UpstreamError) as exc:
            await client.post_form(url, {"grant_type": "refresh_token"})
        assert exc.value.status_code == 504
        await client.aclose()


async def test_upstream_client_sends_form_and_client_credentials_over_the_pool():
    server = Server(answering(OK))
    async with server as url:
        client = UpstreamClient(Upstream.oidc(client_id="shim", client_secret="s3cret", authorization_endpoint=url, token_endpoint=url))
        status, body = await client.post_form(url, {"grant_type": "refresh_token", "refresh_token": "r t"})
        await client.aclose()
    assert (status, body) == (200, {"a": "ok"})
    request = server.requests[0]
    assert b"Content-Type: application/x-www-form-urlencoded" in request
    assert request.endswith(b"grant_type=refresh_token&refresh_token=r+t&client_id=shim&client_secret=s3cret")


@pytest.mark.parametrize(
    ("method", "expected_body", "basic"),
    [
        ("client_secret_post", b"grant_type=refresh_token&refresh_token=r+1&client_id=c&client_secret=s%26x", False),
        ("client_secret_basic", b"grant_type=refresh_token&refresh_token=r+1&client_id=c", True),
    ],
)
async def test_the_shims_own_client_credentials_are_sent_and_win(method, expected_body, basic):
    server = Server(answering(OK))
    async with server as url:
        upstream = Upstream.oidc(
            client_id="c", client_secret="s&x", authorization_endpoint=url, token_endpoint=url, token_auth_method=method
        )
        client = UpstreamClient(upstream)
        form = {"grant_type": "refresh_token", "client_id": "forged", "refresh_token": "r 1", "client_secret": "forged"}
        assert await client.post_form(url, form) == (200, {"a": "ok"})
        await client.aclose()
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert body == expected_body
    assert (b"\r\nAuthorization: Basic YzpzJTI2eA==" in head) is basic  # base64("c:s%26x")
    assert b"\r\nContent-Type: application/x-www-form-urlencoded" in head

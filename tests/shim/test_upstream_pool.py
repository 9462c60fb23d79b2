"""The lean HTTP/1.1 pool for POSTs to the IdP, against real loopback servers that misbehave
on purpose (fault injection over real sockets rather than a mocked transport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.upstream.pool import ConnectionPool, HTTPError
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


def per_connection(*handlers: Handler) -> Handler:
    """The n-th connection is served by the n-th handler (the last one for the rest)."""

    async def handler(reader, writer, ctx):
        await handlers[min(ctx["server"].connections, len(handlers)) - 1](reader, writer, ctx)

    return handler


def answering_then_hanging_up(*responses: bytes) -> Handler:
    """Answers ``responses`` on one kept-alive connection, then reads one more request and
    closes the connection without answering it."""

    async def handler(reader, writer, ctx):
        await answering(*responses, keep_open=False)(reader, writer, ctx)
        ctx["server"].requests.append(await _read_request(reader))

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


async def test_an_idle_connection_the_peer_closed_is_not_used_again():
    server = Server(answering(OK, keep_open=False))  # answers once, then closes
    async with server as url:
        pool = ConnectionPool(timeout=5)
        await pool.request("POST", url)
        await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()
    assert server.connections == 2


async def test_a_post_is_never_sent_twice_when_a_kept_alive_connection_closes_unanswered():
    """RFC 9112 §9.3.1.1: the IdP may have acted on the request (a refresh token rotated and
    its reuse detected) before closing; the failure is reported, the request not resent."""
    server = Server(answering_then_hanging_up(OK))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        await pool.request("POST", url, body=b"grant_type=refresh_token&refresh_token=r1")
        with pytest.raises(HTTPError):
            await pool.request("POST", url, body=b"grant_type=refresh_token&refresh_token=r2")
        await pool.aclose()
    assert [request.rpartition(b"\r\n\r\n")[2] for request in server.requests] == [
        b"grant_type=refresh_token&refresh_token=r1",
        b"grant_type=refresh_token&refresh_token=r2",
    ]
    assert server.connections == 1


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


# -- the findings of the second security review, each with a peer that does it -------------------

CHUNK_EXTENSION = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=" + b"y" * 100_000 + b"\r\n{}\r\n0\r\n\r\n"
TRAILERS = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + b"T: t\r\n" * 20_000 + b"\r\n"
ONE_BYTE_CHUNKS = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * (1024 * 1024) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    "response",
    [
        CHUNK_EXTENSION,
        TRAILERS,
        ONE_BYTE_CHUNKS,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    ],
    ids=["chunk-extension", "trailers", "one-byte-chunks", "cl-and-te", "te-and-cl", "xchunked", "gzip", "upgrade"],
)
async def test_a_hostile_framing_is_refused_and_the_connection_dropped(response):
    server = Server(per_connection(answering(response), answering(OK)))
    async with server as url:
        pool = ConnectionPool(timeout=10)
        with pytest.raises(HTTPError):
            await pool.request("POST", url)
        assert (await pool.request("POST", url)).body == b'{"a":"ok"}\n'
        await pool.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 20\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ],
    ids=["204", "304-with-length", "100-then-204"],
)
async def test_an_answer_without_a_body_ends_with_its_header_section(response):
    """RFC 9112 §6.3: no waiting for a body (nor for the timeout) after 1xx, 204 or 304; the
    connection stays open, and is reused."""
    server = Server(answering(response, OK))
    async with server as url:
        pool = ConnectionPool(timeout=30)
        assert (await pool.request("POST", url)).body == b""
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()
    assert server.connections == 1


async def test_the_answer_to_head_has_no_body():
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
    async with Server(answering(response)) as url:
        pool = ConnectionPool(timeout=30)
        assert (await pool.request("HEAD", url)).body == b""
        await pool.aclose()


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk",
    ],
    ids=["http-1.0", "connection-close", "a-second-answer", "trailing-bytes"],
)
async def test_a_connection_is_not_reused_after_an_answer_that_ends_it(response):
    server = Server(per_connection(answering(response), answering(OK)))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        assert (await pool.request("POST", url)).body == b"{}"
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()
    assert server.connections == 2


async def test_bytes_between_exchanges_drop_the_connection():
    async def chatty(reader, writer, ctx):
        ctx["server"].requests.append(await _read_request(reader))
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(OK)  # nobody asked
        await reader.read()

    server = Server(per_connection(chatty, answering(OK)))
    async with server as url:
        pool = ConnectionPool(timeout=5)
        await pool.request("POST", url)
        await asyncio.sleep(0.2)
        assert (await pool.request("POST", url)).status == 200
        await pool.aclose()
    assert server.connections == 2


class Held:
    """A peer that answers each request when the test lets it, counting connections open at
    the same time."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.open_now = 0
        self.most_open = 0

    async def __call__(self, reader, writer, ctx):
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                ctx["server"].requests.append(await _read_request(reader))
                await self.release.wait()
                writer.write(OK)
                await writer.drain()
        finally:
            self.open_now -= 1


async def test_connections_per_origin_are_capped_and_requests_wait_in_line():
    held = Held()
    server = Server(held)
    async with server as url:
        pool = ConnectionPool(timeout=10, max_connections_per_origin=2)
        requests = [asyncio.ensure_future(pool.request("POST", url)) for _ in range(6)]
        while len(server.requests) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # room for a third connection, if the cap let it through
        assert (server.connections, len(server.requests)) == (2, 2)
        held.release.set()
        assert [response.status for response in await asyncio.gather(*requests)] == [200] * 6
        await pool.aclose()
    assert held.most_open == 2


async def test_waiting_in_line_counts_against_the_exchange_deadline():
    held = Held()
    async with Server(held) as url:
        pool = ConnectionPool(timeout=0.5, max_connections_per_origin=1)
        first = asyncio.ensure_future(pool.request("POST", url))
        with pytest.raises(TimeoutError):
            await pool.request("POST", url)  # behind a request the peer never answers
        with pytest.raises(TimeoutError):
            await first
        await pool.aclose()


async def test_a_place_in_line_goes_to_the_next_request_after_a_failure():
    async def hang_up_first(reader, writer, ctx):
        if ctx["server"].connections == 1:
            await _read_request(reader)
            await asyncio.sleep(0.1)
            return  # closes without answering
        await answering(OK, OK)(reader, writer, ctx)

    async with Server(hang_up_first) as url:
        pool = ConnectionPool(timeout=5, max_connections_per_origin=1)
        outcomes = await asyncio.gather(*(pool.request("POST", url) for _ in range(3)), return_exceptions=True)
        await pool.aclose()
    assert isinstance(outcomes[0], HTTPError)
    assert [outcome.status for outcome in outcomes[1:]] == [200, 200]


# -- through the shim's token endpoint ------------------------------------------------------------

TOKEN_ANSWER = b'{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt2"}'
TOKEN_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(TOKEN_ANSWER),
    TOKEN_ANSWER,
)


async def _refresh_through_the_shim(url: str, refreshes: int) -> list[httpx.Response]:
    from mcp_oauth_shim import OAuthShim
    from mcp_oauth_shim.sealing import REFRESH, digest

    upstream = Upstream.oidc(client_id="c", client_secret="s", authorization_endpoint=url, token_endpoint=url)
    shim = OAuthShim(public_url="http://127.0.0.1:8000", upstream=upstream, secret_keys=["k" * 48])
    transport = httpx.ASGITransport(app=shim.app)
    responses = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        registered = await client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:53682/cb"]})
        client_id = registered.json()["client_id"]
        for i in range(refreshes):
            refresh = shim.context.sealer.seal(REFRESH, {"u": f"upstream-{i}", "c": digest(client_id), "sc": "openid"})
            form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id}
            responses.append(await client.post("/oauth/token", data=form))
    await shim.context.upstream_client.aclose()
    return responses


async def test_a_refresh_is_sent_to_the_idp_once_and_answered_502_when_the_connection_drops():
    server = Server(answering_then_hanging_up(TOKEN_OK))
    async with server as url:
        first, second = await _refresh_through_the_shim(url, 2)
    assert first.status_code == 200
    assert second.status_code == 502
    assert second.json()["error"] == "temporarily_unavailable"
    assert [request.count(b"refresh_token=upstream-1") for request in server.requests] == [0, 1]


@pytest.mark.parametrize(
    "response",
    [CHUNK_EXTENSION, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"],
    ids=["chunk-extension", "cl-and-te"],
)
async def test_a_hostile_framing_from_the_idp_is_a_json_502_at_the_token_endpoint(response):
    async with Server(answering(response)) as url:
        (answer,) = await _refresh_through_the_shim(url, 1)
    assert answer.status_code == 502
    assert answer.json()["error"] == "temporarily_unavailable"


# -- a user's credential on one request (UserInfo, GitHub's API) -------------------------------


async def test_the_authorization_field_is_sent_with_its_request():
    server = Server(answering(OK, OK))
    async with server as url:
        pool = ConnectionPool(timeout=2.0)
        await pool.request("GET", url, authorization="Bearer user-token-1")
        await pool.request("GET", url)
        await pool.aclose()
    assert b"\r\nAuthorization: Bearer user-token-1\r\n" in server.requests[0]
    assert b"Authorization" not in server.requests[1]


async def test_requests_with_different_credentials_share_one_encoded_head():
    """The head cache is keyed by method, URL and the repeating fields: a user's credential
    is never part of a key, so the cache keeps no tokens and does not grow per user."""
    from mcp_oauth_shim.upstream.pool import _request_head

    server = Server(answering(OK, OK, OK))
    async with server as url:
        pool = ConnectionPool(timeout=2.0)
        await pool.request("GET", url, authorization="Bearer first")
        before = _request_head.cache_info()
        await pool.request("GET", url, authorization="Bearer second")
        await pool.request("GET", url, authorization="Bearer third")
        after = _request_head.cache_info()
        await pool.aclose()
    assert (after.misses, after.currsize) == (before.misses, before.currsize)
    assert after.hits == before.hits + 2


@pytest.mark.parametrize(
    "credential",
    ["Bearer a\r\nX-Injected: 1", "Bearer a\nb", "Bearer a\rb", "Bearer \x00", "Bearer caf\u00e9", "Bearer \u2028"],
    ids=["crlf", "lf", "cr", "nul", "non-ascii", "unicode-line-separator"],
)
@pytest.mark.parametrize("transport", ["pool", "httpx"])
async def test_an_authorization_field_that_could_split_the_request_is_refused_unsent(credential, transport):
    from mcp_oauth_shim.upstream import HttpxTransport

    server = Server(answering(OK))
    async with server as url:
        if transport == "pool":
            sender = ConnectionPool(timeout=2.0)
        else:
            sender = HttpxTransport(httpx.AsyncClient(), deadline=2.0)
        with pytest.raises(HTTPError, match="Authorization"):
            await sender.request("GET", url, authorization=credential)
        await sender.aclose()
    assert server.requests == []


async def test_an_unreachable_idp_is_logged_without_the_password_its_url_may_hold(caplog):
    url = "http://shim-user:idp-url-password@127.0.0.1:9/token"
    client = UpstreamClient(Upstream.oidc(client_id="c", client_secret="s", authorization_endpoint=url, token_endpoint=url))
    with caplog.at_level("WARNING"), pytest.raises(UpstreamError):
        await client.post_form(url, {"grant_type": "refresh_token"})
    await client.aclose()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "shim-user:<redacted>@127.0.0.1:9" in logged
    assert "idp-url-password" not in logged

"""Issued-token mode's identity lookups (UserInfo, GitHub's user API) on the shim's keep-alive
pool, against a real loopback server that misbehaves on purpose: every fault is a clear
:class:`UpstreamError` (the status and error code the token endpoint answers with, and the
IdP's ``Retry-After`` when it gave one) within the configured deadline."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from mcp_oauth_shim.identity import fetch_github_user, fetch_userinfo
from mcp_oauth_shim.upstream import UpstreamError
from mcp_oauth_shim.upstream.pool import ConnectionPool
from tests.dripping import dripping_json

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5  # seconds: the pool's deadline for one exchange
HANG_GUARD = 10  # a liveness guard only, far above TIMEOUT
TOKEN = "upstream-at-7c1e"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def reply(status: int, body: bytes = b"", **headers: str) -> bytes:
    fields = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(fields) + "\r\n\r\n").encode() + body


def answering(response: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()

    return handler


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback HTTP/1.1 server; yields its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def lookup(kind: str, base: str) -> None:
    pool = ConnectionPool(timeout=TIMEOUT)
    try:
        with anyio.fail_after(HANG_GUARD):
            if kind == "userinfo":
                await fetch_userinfo(pool, f"{base}/userinfo", TOKEN)
            else:
                await fetch_github_user(pool, TOKEN, api_url=base)
    finally:
        await pool.aclose()


def in_seconds(seconds: int) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


# Built when the test runs: an HTTP-date is a moment, not a delay.
BUSY: list[tuple[str, Callable[[], bytes], int]] = [
    ("429-seconds", lambda: reply(429, Retry_After="7"), 7),
    ("503-seconds", lambda: reply(503, Retry_After="12"), 12),
    ("429-http-date", lambda: reply(429, Retry_After=in_seconds(120)), 120),
]


@pytest.mark.parametrize("kind", ["userinfo", "github"])
@pytest.mark.parametrize(("response", "seconds"), [(r, s) for _, r, s in BUSY], ids=[n for n, _, _ in BUSY])
async def test_a_busy_identity_lookup_is_503_with_the_idps_retry_after(kind: str, response: Callable[[], bytes], seconds: int) -> None:
    async with serving(answering(response())) as base:
        with pytest.raises(UpstreamError) as caught:
            await lookup(kind, base)
    assert (caught.value.status_code, caught.value.error) == (503, "temporarily_unavailable")
    # An HTTP-date is read against the clock: the wait may come out a second shorter.
    assert seconds - 2 <= int(caught.value.headers["Retry-After"]) <= seconds


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()  # until the client gives up


async def slow_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


dripped_body = dripping_json(b'{"sub": "u1", "name": "' + b"x" * 200 + b'"}')


async def reset_mid_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sub": "u')
    await writer.drain()
    writer.transport.abort()  # RST


async def closed_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")


# Each fault, and the (status, error) the token endpoint answers with.
FAULTS: list[tuple[str, Handler, tuple[int, str]]] = [
    ("no-answer", silent, (504, "temporarily_unavailable")),
    ("headers-dripped", slow_headers, (504, "temporarily_unavailable")),
    ("body-dripped", dripped_body, (504, "temporarily_unavailable")),
    ("reset-mid-answer", reset_mid_answer, (502, "temporarily_unavailable")),
    ("closed-unanswered", closed_at_once, (502, "temporarily_unavailable")),
    ("500", answering(reply(500, b"<html>oops</html>")), (502, "temporarily_unavailable")),
    ("html", answering(reply(200, b"<html>login</html>", Content_Type="text/html")), (502, "server_error")),
    ("truncated-json", answering(reply(200, b'{"sub": "u1", "na')), (502, "server_error")),
    ("json-array", answering(reply(200, b'[{"sub": "u1"}]')), (502, "server_error")),
    ("huge-body", answering(reply(200, b'{"sub": "u1", "pad": "' + b"x" * 600_000 + b'"}')), (502, "server_error")),
    ("body-past-the-pool-bound", answering(reply(200, b"x" * (2 * 1024 * 1024))), (502, "temporarily_unavailable")),
    ("401", answering(reply(401, b'{"error": "invalid_token"}')), (400, "invalid_grant")),
]


@pytest.mark.parametrize("kind", ["userinfo", "github"])
@pytest.mark.parametrize(("handler", "expected"), [(h, e) for _, h, e in FAULTS], ids=[n for n, _, _ in FAULTS])
async def test_an_identity_lookup_fault_is_a_clear_upstream_error_within_the_deadline(
    kind: str, handler: Handler, expected: tuple[int, str]
) -> None:
    async with serving(handler) as base:
        with pytest.raises(UpstreamError) as caught:
            await lookup(kind, base)
    assert (caught.value.status_code, caught.value.error) == expected
    assert TOKEN not in caught.value.description


async def test_an_identity_lookup_to_a_port_nobody_listens_on_is_502() -> None:
    async with serving(silent) as base:
        pass  # the port is free again: connections are refused
    with pytest.raises(UpstreamError) as caught:
        await lookup("userinfo", base)
    assert (caught.value.status_code, caught.value.error) == (502, "temporarily_unavailable")


# GitHub's REST API over its limits: a 403 (or 429) with x-ratelimit-remaining 0 and the reset
# time in epoch seconds (primary limit), or with Retry-After (secondary limit).
GITHUB_LIMITS: list[tuple[str, Callable[[], bytes], int]] = [
    ("primary-403", lambda: reply(403, b'{"message": "API rate limit exceeded"}', X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(time.time()) + 60)), 60),
    ("secondary-403", lambda: reply(403, b'{"message": "secondary rate limit"}', Retry_After="30"), 30),
]


@pytest.mark.parametrize(("response", "seconds"), [(r, s) for _, r, s in GITHUB_LIMITS], ids=[n for n, _, _ in GITHUB_LIMITS])
async def test_githubs_rate_limit_is_503_with_retry_after_not_a_server_error(response: Callable[[], bytes], seconds: int) -> None:
    async with serving(answering(response())) as base:
        with pytest.raises(UpstreamError) as caught:
            await lookup("github", base)
    assert (caught.value.status_code, caught.value.error) == (503, "temporarily_unavailable")
    assert seconds - 2 <= int(caught.value.headers["Retry-After"]) <= seconds


async def test_a_plain_403_from_github_stays_a_server_error() -> None:
    async with serving(answering(reply(403, b'{"message": "Resource not accessible"}'))) as base:
        with pytest.raises(UpstreamError) as caught:
            await lookup("github", base)
    assert (caught.value.status_code, caught.value.error) == (502, "server_error")


async def test_githubs_rate_limit_on_the_email_api_leaves_the_identity_without_an_email() -> None:
    """The e-mail address is optional (a 403 there usually means no user:email scope): over the
    rate limit on /user/emails, the user known from /user still signs in."""
    user = b'{"id": 1, "login": "octocat", "email": null}'
    limited = reply(403, b'{"message": "API rate limit exceeded"}', X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(time.time()) + 60))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(limited if head.startswith(b"GET /user/emails ") else reply(200, user))
            await writer.drain()

    async with serving(handler) as base:
        pool = ConnectionPool(timeout=TIMEOUT)
        try:
            identity = await fetch_github_user(pool, TOKEN, api_url=base)
        finally:
            await pool.aclose()
    assert (identity.subject, identity.email) == ("1", None)

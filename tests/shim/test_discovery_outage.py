"""The discovery document read before keeps serving while the IdP cannot give a new one.

The document is read again every hour (``DISCOVERY_TTL``). If that read fails (the IdP is
down, slow or answers something unusable), the shim goes on with the document it has and asks
again ``DISCOVERY_RETRY_AFTER`` seconds later; a shim that never read one sees the failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError
from mcp_oauth_shim.upstream.client import DISCOVERY_RETRY_AFTER, DISCOVERY_TTL

from .test_upstream import DOC, ISSUER

MOVED = {**DOC, "token_endpoint": ISSUER + "/v2/token"}


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def _slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer")


# What the IdP may answer instead of its document, once the shim holds one.
FAILURES: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "connection refused": _down,
    "timeout": _slow,
    "500": lambda r: httpx.Response(500),
    "503 with Retry-After": lambda r: httpx.Response(503, headers={"Retry-After": "30"}),
    "HTML instead of JSON": lambda r: httpx.Response(200, content=b"<html>maintenance</html>"),
    "a document naming another issuer": lambda r: httpx.Response(200, json={**DOC, "issuer": "https://impostor.example"}),
    "a document without a token endpoint": lambda r: httpx.Response(200, json={"issuer": ISSUER}),
}


class IdP:
    """A mock transport whose answer to the discovery request the test chooses."""

    def __init__(self) -> None:
        self.answer: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(200, json=DOC)
        self.reads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.reads += 1
        return self.answer(request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> IdP:
    return IdP()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(idp: IdP, clock: Clock) -> UpstreamClient:
    upstream = Upstream.oidc(issuer=ISSUER, client_id="c", client_secret="s")
    return UpstreamClient(upstream, http=httpx.AsyncClient(transport=httpx.MockTransport(idp)), clock=clock)


def _read_then_fail(client: UpstreamClient, idp: IdP, clock: Clock, failure: str) -> str:
    """Read the document, let it age past the TTL, make the IdP fail: the token endpoint then."""

    async def main() -> str:
        await client.metadata()
        clock.now += DISCOVERY_TTL
        idp.answer = FAILURES[failure]
        return (await client.metadata()).token_endpoint

    return asyncio.run(main())


@pytest.mark.parametrize("failure", FAILURES)
def test_the_document_held_keeps_serving_when_reading_it_again_fails(
    client: UpstreamClient, idp: IdP, clock: Clock, failure: str
) -> None:
    assert _read_then_fail(client, idp, clock, failure) == ISSUER + "/token"
    assert idp.reads == 2


def test_a_failed_read_again_is_logged_as_a_warning(
    client: UpstreamClient, idp: IdP, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.upstream.client"):
        _read_then_fail(client, idp, clock, "connection refused")
    assert any("keeping the document read before" in r.getMessage() for r in caplog.records)


def test_after_a_failed_read_the_idp_is_not_asked_again_before_the_retry_interval(
    client: UpstreamClient, idp: IdP, clock: Clock
) -> None:
    _read_then_fail(client, idp, clock, "connection refused")
    clock.now += DISCOVERY_RETRY_AFTER - 0.1
    asyncio.run(client.metadata())
    assert idp.reads == 2


def test_after_the_retry_interval_a_new_document_replaces_the_one_held(
    client: UpstreamClient, idp: IdP, clock: Clock
) -> None:
    _read_then_fail(client, idp, clock, "connection refused")
    idp.answer = lambda r: httpx.Response(200, json=MOVED)
    clock.now += DISCOVERY_RETRY_AFTER
    assert asyncio.run(client.metadata()).token_endpoint == ISSUER + "/v2/token"
    assert idp.reads == 3


def test_the_new_document_is_then_kept_for_the_whole_ttl(client: UpstreamClient, idp: IdP, clock: Clock) -> None:
    _read_then_fail(client, idp, clock, "connection refused")
    idp.answer = lambda r: httpx.Response(200, json=DOC)
    clock.now += DISCOVERY_RETRY_AFTER
    asyncio.run(client.metadata())
    clock.now += DISCOVERY_TTL - 1
    asyncio.run(client.metadata())
    assert idp.reads == 3


def test_without_a_document_held_the_failure_is_the_callers(client: UpstreamClient, idp: IdP) -> None:
    idp.answer = _down
    with pytest.raises(UpstreamError) as raised:
        asyncio.run(client.metadata())
    assert raised.value.status_code == 502


class SlowAfterTheFirstRead:
    """An IdP that answers the first read at once with DOC, and later reads with MOVED only
    once ``answered`` is set."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()
        self.reads = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.reads += 1
        if self.reads > 1:
            await self.answered.wait()
        return httpx.Response(200, json=DOC if self.reads == 1 else MOVED)


def test_while_the_document_is_read_again_only_the_request_that_started_the_read_waits(
    client: UpstreamClient, clock: Clock
) -> None:
    """The IdP takes its time to answer; the requests arriving meanwhile are not held up."""
    idp = SlowAfterTheFirstRead()

    async def main() -> tuple[list[str], int]:
        await client.metadata()
        clock.now += DISCOVERY_TTL
        started = asyncio.ensure_future(client.metadata())
        await asyncio.sleep(0)  # the read is under way
        others = [m.token_endpoint for m in await asyncio.gather(*(client.metadata() for _ in range(20)))]
        waiting = 0 if started.done() else 1
        idp.answered.set()
        await started
        return others, waiting

    client.http = httpx.AsyncClient(transport=httpx.MockTransport(idp))
    others, waiting = asyncio.run(main())
    assert others == [ISSUER + "/token"] * 20
    assert waiting == 1
    assert idp.reads == 2


def test_a_read_again_whose_starting_request_is_cancelled_still_replaces_the_document(
    client: UpstreamClient, clock: Clock
) -> None:
    """The client that started the read went away: the read goes on for everyone else."""
    idp = SlowAfterTheFirstRead()

    async def main() -> str:
        await client.metadata()
        clock.now += DISCOVERY_TTL
        started = asyncio.ensure_future(client.metadata())
        await asyncio.sleep(0.01)  # the read is under way
        started.cancel()
        idp.answered.set()
        while len(client._discovery):  # the read finishes without its starter
            await asyncio.sleep(0.01)
        return (await client.metadata()).token_endpoint

    client.http = httpx.AsyncClient(transport=httpx.MockTransport(idp))
    assert asyncio.run(main()) == ISSUER + "/v2/token"
    assert idp.reads == 2

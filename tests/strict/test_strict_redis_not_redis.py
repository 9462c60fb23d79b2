"""A Redis URL that reaches a server which is not Redis (a web server or memcached on the port
the operator gave): redis-py cannot parse the answer and raises ``InvalidResponse``, which must
count as Redis being unavailable (503 ``temporarily_unavailable``, or the ``allow`` fallback),
never a 500 from the endpoints."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from mcp_oauth_shim.strict import RateBucket, RateDecision, RefreshUse, StrictMode, StrictModeUnavailable

from .shim_replicas import Browser, make_idp, make_replica, pkce_pair, token

pytestmark = pytest.mark.anyio

HANG_GUARD = 10  # a liveness guard only

# What the wrong server answers to the first bytes of a Redis command.
NOT_REDIS_ANSWERS = {
    "web server": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "memcached": b"ERROR\r\n",
}


@pytest.fixture(params=list(NOT_REDIS_ANSWERS))
def not_redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A ``redis://`` URL (with a password, as a real one would have) to a loopback server that
    answers every read with another protocol's reply."""
    answer = NOT_REDIS_ANSWERS[request.param]
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    while conn.recv(65536):
                        conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"redis://:not-redis-password@127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


OPERATIONS: list[tuple[str, Callable[[StrictMode], Awaitable[object]], object]] = [
    ("consume_once", lambda m: m.consume_once("code", "sealed-code", time.time() + 300), True),
    ("use_refresh", lambda m: m.use_refresh("family", "token", time.time() + 300), RefreshUse.FIRST_USE),
    ("is_family_revoked", lambda m: m.is_family_revoked("family"), False),
    ("revoke_family", lambda m: m.revoke_family("family", time.time() + 300), None),
    ("hit", lambda m: m.hit(RateBucket.REGISTER_IP, "198.51.100.7"), RateDecision(True, 0)),
]


@pytest.mark.parametrize(("name", "operation", "_"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_a_server_that_is_not_redis_refuses_with_unavailable(
    not_redis_url: str, name: str, operation: Callable[[StrictMode], Awaitable[object]], _: object
) -> None:
    mode = StrictMode.redis(not_redis_url, timeout=0.5)
    try:
        with anyio.fail_after(HANG_GUARD), pytest.raises(StrictModeUnavailable):
            await operation(mode)
    finally:
        await mode.aclose()


@pytest.mark.parametrize(("name", "operation", "as_if_off"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_a_server_that_is_not_redis_with_allow_answers_as_without_strict_mode(
    not_redis_url: str, name: str, operation: Callable[[StrictMode], Awaitable[object]], as_if_off: object
) -> None:
    mode = StrictMode.redis(not_redis_url, timeout=0.5, on_unavailable="allow")
    try:
        with anyio.fail_after(HANG_GUARD):
            assert await operation(mode) == as_if_off
    finally:
        await mode.aclose()


async def test_every_strict_endpoint_answers_503_not_500_when_the_redis_url_is_not_redis(
    not_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    idp = make_idp()
    replica = make_replica(idp, StrictMode.redis(not_redis_url, timeout=0.5))
    browser = Browser(idp)
    try:
        client_id = await browser.register(make_replica(idp, None))
        async with replica.client() as http:
            answers = {
                "register": await http.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:5/cb"]}),
                "authorize": await browser.authorize(replica, client_id, pkce_pair()[1]),
                "token": await token(replica, {"grant_type": "refresh_token", "refresh_token": "x", "client_id": client_id}),
            }
    finally:
        await replica.aclose()

    assert {name: answer.status_code for name, answer in answers.items()} == {"register": 503, "authorize": 503, "token": 503}
    for answer in answers.values():
        assert answer.headers["retry-after"] == "5"
        assert "temporarily_unavailable" in answer.text
    assert "not-redis-password" not in caplog.text

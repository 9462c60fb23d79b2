"""One verified caller holds at most `max_sessions_per_caller` stateful sessions at once.

Without the bound, one client with a valid token could open sessions until the server's limit
(10 000) is reached, and every other user's `initialize` would then be refused. Sessions are
counted here and in the SDK together, whichever path opened them (`fast_path` on or off).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from mcp_bridge.sessions import DEFAULT_MAX_SESSIONS_PER_CALLER
from tests.bridge.sample_app import build_app
from tests.bridge.test_auth import ACCEPT, INIT, LIST, Protected, protected, rpc

LIMIT = 3
PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["bridge sessions", "SDK sessions"])


def open_sessions(server: Protected, token: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        opened = rpc(server, INIT, token)
        assert opened.status_code == 200, opened.text
        ids.append(opened.headers["mcp-session-id"])
    return ids


@PATHS
def test_a_caller_at_its_limit_gets_429_for_another_session(fast_path: bool) -> None:
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        alice = server.token(subject="alice")
        open_sessions(server, alice, LIMIT)
        refused = rpc(server, INIT, alice)
    assert refused.status_code == 429
    assert "mcp-session-id" not in refused.headers
    assert refused.json()["error"]["code"] == -32603
    assert "Too many open sessions for this caller" in refused.json()["error"]["message"]


@PATHS
def test_another_caller_still_opens_sessions_while_one_is_at_its_limit(fast_path: bool) -> None:
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        open_sessions(server, server.token(subject="alice"), LIMIT)
        bob = rpc(server, INIT, server.token(subject="bob"))
    assert bob.status_code == 200 and bob.headers["mcp-session-id"]


@PATHS
def test_the_sessions_of_a_caller_at_its_limit_keep_working(fast_path: bool) -> None:
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        alice = server.token(subject="alice")
        first = open_sessions(server, alice, LIMIT)[0]
        assert rpc(server, INIT, alice).status_code == 429
        listed = rpc(server, LIST, alice, **{"mcp-session-id": first, "mcp-protocol-version": "2025-11-25"})
    assert listed.status_code == 200, listed.text


@PATHS
def test_ending_a_session_frees_its_place_for_a_new_one(fast_path: bool) -> None:
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        alice = server.token(subject="alice")
        first = open_sessions(server, alice, LIMIT)[0]
        import httpx

        ended = httpx.delete(
            server.mcp,
            headers={"authorization": f"Bearer {alice}", "mcp-session-id": first, "mcp-protocol-version": "2025-11-25"},
            timeout=10,
        )
        assert ended.status_code == 200, ended.text
        again = rpc(server, INIT, alice)
    assert again.status_code == 200, again.text


async def _initialize_at_once(server: Protected, token: str, count: int) -> list[int]:
    """`count` opening requests of one caller sent at the same time: their statuses."""
    headers = {**ACCEPT, "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        answers = await asyncio.gather(*(client.post(server.mcp, json=INIT, headers=headers) for _ in range(count)))
    return [answer.status_code for answer in answers]


@PATHS
def test_opening_requests_sent_at_once_open_no_more_sessions_than_the_limit(fast_path: bool) -> None:
    """The count and the opening of a session are one step: requests racing past the count
    while the SDK admits the first ones would each open a session. (While the SDK answers an
    opening request, its session may count twice: some requests at once may get 429 below
    the limit, never a session beyond it.)"""
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        statuses = asyncio.run(_initialize_at_once(server, server.token(subject="alice"), 5 * LIMIT))
    assert 1 <= statuses.count(200) <= LIMIT, statuses
    assert set(statuses) == {200, 429}, statuses


def test_a_new_token_of_the_same_caller_counts_against_the_same_limit() -> None:
    """The limit is the caller's (the SDK's session owner), not one token's."""
    with protected(stateless=False, max_sessions_per_caller=LIMIT) as server:
        open_sessions(server, server.token(subject="alice"), LIMIT)
        refused = rpc(server, INIT, server.token(subject="alice"))
    assert refused.status_code == 429


@PATHS
def test_callers_opening_sessions_one_after_another_up_to_the_limit_are_never_refused(fast_path: bool) -> None:
    """A session whose answer has arrived counts once, however soon the next request comes
    (one kept-alive connection per caller: the next request follows the answer at once)."""
    statuses = []
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        for n in range(15):
            headers = {**ACCEPT, "authorization": f"Bearer {server.token(subject=f'user-{n}')}"}
            with httpx.Client(timeout=10) as client:
                statuses += [client.post(server.mcp, json=INIT, headers=headers).status_code for _ in range(LIMIT)]
    assert statuses == [200] * (15 * LIMIT), statuses


def token_of(server: Protected, subject: str, client: str) -> str:
    """A token of `subject` issued to `client`."""
    return server.token(subject=subject, extra_claims={"client_id": client, "azp": client})


@PATHS
def test_the_limit_is_the_users_whichever_client_they_sign_in_with(fast_path: bool) -> None:
    """Anyone may register clients (RFC 7591): one user signing in with a new client for each
    session would otherwise hold the limit once per client, and fill the server's limit all the same."""
    with protected(stateless=False, fast_path=fast_path, max_sessions_per_caller=LIMIT) as server:
        for client in range(LIMIT):
            open_sessions(server, token_of(server, "alice", f"client-{client}"), 1)
        refused = rpc(server, INIT, token_of(server, "alice", "one-more-client"))
    assert refused.status_code == 429, refused.text


def test_a_stateless_endpoint_has_no_sessions_to_count() -> None:
    with protected(stateless=True, max_sessions_per_caller=1) as server:
        alice = server.token(subject="alice")
        answers = [rpc(server, INIT, alice).status_code for _ in range(3)]
    assert answers == [200, 200, 200]


def test_the_default_limit_is_one_hundred_sessions_per_caller() -> None:
    app: FastAPI = build_app()[0]
    endpoint = MCPBridge(app).mount_http("/mcp", stateless=False)
    assert endpoint.sessions.max_sessions_per_caller == DEFAULT_MAX_SESSIONS_PER_CALLER == 100


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused_when_mounting(limit: int) -> None:
    with pytest.raises(ValueError, match="max_sessions_per_caller"):
        MCPBridge(build_app()[0]).mount_http("/mcp", stateless=False, max_sessions_per_caller=limit)

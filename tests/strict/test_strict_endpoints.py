"""Strict mode at the endpoints, on a real redis-server: two replicas of the shim (two
``OAuthShim`` objects with the same secret keys and the same Redis) in front of one
development IdP whose token endpoint calls are counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from mcp_oauth_shim.payloads import RefreshToken
from mcp_oauth_shim.strict import RateLimit, RateLimits, StrictMode
from tests.peers.redis_server import RedisServer

from .shim_replicas import (
    IdP,
    Browser,
    Replica,
    make_idp,
    make_replica,
    pkce_pair,
    refresh_form,
    token,
)

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

StrictFactory = Callable[..., StrictMode]


@pytest.fixture
def idp() -> IdP:
    return make_idp()


@pytest.fixture
def strict_on(redis_server: RedisServer, key_prefix: str) -> StrictFactory:
    """StrictMode objects sharing one Redis and key prefix: one per replica."""

    def build(**options: Any) -> StrictMode:
        return StrictMode.redis(redis_server.url, key_prefix=key_prefix, **options)

    return build


@pytest.fixture
async def replicas(idp: IdP, strict_on: StrictFactory) -> AsyncIterator[tuple[Replica, Replica]]:
    first, second = make_replica(idp, strict_on()), make_replica(idp, strict_on())
    yield first, second
    await first.aclose()
    await second.aclose()


async def tokens_after_login(idp: IdP, replica: Replica) -> tuple[Any, dict[str, Any]]:
    login = await Browser(idp).login(replica)
    answer = await token(replica, login.code_form())
    assert answer.status_code == 200, answer.text
    return login, answer.json()


# -- authorization codes -----------------------------------------------------------------------


async def test_a_code_replayed_on_another_replica_is_refused_before_the_idp_is_called(
    idp: IdP, replicas: tuple[Replica, Replica]
) -> None:
    first, second = replicas
    login = await Browser(idp).login(first)
    assert (await token(first, login.code_form())).status_code == 200
    calls = idp.token_calls

    replay = await token(second, login.code_form())

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert idp.token_calls == calls == 1


async def test_a_code_refused_by_a_local_check_is_not_spent(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    login = await Browser(idp).login(first)
    wrong_verifier = {**login.code_form(), "code_verifier": pkce_pair()[0]}
    assert (await token(first, wrong_verifier)).json()["error"] == "invalid_grant"

    assert (await token(second, login.code_form())).status_code == 200


# -- refresh tokens ----------------------------------------------------------------------------


async def test_every_refresh_issues_a_new_refresh_token_of_the_same_family(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    sealer = first.shim.context.sealer
    issued = [tokens["refresh_token"]]
    for replica in (second, first, second):
        answer = await token(replica, refresh_form(login, issued[-1]))
        assert answer.status_code == 200, answer.text
        issued.append(answer.json()["refresh_token"])

    opened = [RefreshToken.open(sealer, value, max_age=3600) for value in issued]
    assert len({t.token_id for t in opened}) == len(issued)
    assert {t.family for t in opened} == {opened[0].family}
    assert opened[0].family is not None


async def test_a_refresh_token_reused_on_another_replica_revokes_its_family(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    stolen = tokens["refresh_token"]
    newer = (await token(first, refresh_form(login, stolen))).json()["refresh_token"]
    calls = idp.token_calls

    reuse = await token(second, refresh_form(login, stolen))
    after = await token(first, refresh_form(login, newer))

    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")
    assert idp.token_calls == calls


async def test_a_revoked_family_leaves_the_access_tokens_already_issued_valid_until_they_expire(
    idp: IdP, replicas: tuple[Replica, Replica]
) -> None:
    """As documented: a revocation refuses refresh tokens; access tokens are checked without a
    store, so one already issued works until its ``exp`` (keep their lifetime short)."""
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    stolen = tokens["refresh_token"]
    newer = (await token(first, refresh_form(login, stolen))).json()
    assert (await token(second, refresh_form(login, stolen))).status_code == 400

    assert await second.shim.verifier.verify_token(newer["access_token"]) is not None


async def test_a_reuse_leaves_another_login_of_the_same_client_alone(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    other = await Browser(idp).login(first, client_id=login.client_id)
    other_tokens = (await token(first, other.code_form())).json()
    stolen = tokens["refresh_token"]
    await token(first, refresh_form(login, stolen))
    assert (await token(second, refresh_form(login, stolen))).status_code == 400

    answer = await token(second, refresh_form(other, other_tokens["refresh_token"]))

    assert answer.status_code == 200, answer.text


async def test_revoking_a_refresh_token_revokes_its_family(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    older = tokens["refresh_token"]
    newer = (await token(first, refresh_form(login, older))).json()["refresh_token"]
    async with first.client() as http:
        revoked = await http.post("/oauth/revoke", data={"token": older, "client_id": login.client_id})
    assert revoked.status_code == 200

    answer = await token(second, refresh_form(login, newer))

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


# -- consent and the IdP's state ---------------------------------------------------------------


async def test_a_consent_form_replayed_on_another_replica_is_refused(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    browser = Browser(idp)
    client_id = await browser.register(first)
    form = await browser.consent_form(first, client_id, pkce_pair()[1])
    assert (await browser.approve(first, form)).status_code == 303

    replay = await browser.approve(second, form)

    assert replay.status_code == 400
    assert "already used" in replay.text


async def test_a_consent_form_denied_cannot_then_be_approved(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    """The person's answer ends the ticket either way: the client was told access_denied."""
    first, second = replicas
    browser = Browser(idp)
    client_id = await browser.register(first)
    form = await browser.consent_form(first, client_id, pkce_pair()[1])
    denied = await browser.request(first, "POST", "/oauth/consent", data={**form, "decision": "deny"})
    assert "error=access_denied" in denied.headers["location"]

    replay = await browser.approve(second, form)

    assert replay.status_code == 400
    assert "already used" in replay.text


async def test_an_idp_answer_replayed_on_another_replica_with_the_flow_cookie_is_refused(
    idp: IdP, replicas: tuple[Replica, Replica]
) -> None:
    first, second = replicas
    browser = Browser(idp)
    client_id = await browser.register(first)
    consent = await browser.approve(first, await browser.consent_form(first, client_id, pkce_pair()[1]))
    callback_url = await browser.at_idp(consent.headers["location"])
    copy = Browser(idp, cookies=httpx.Cookies(browser.cookies))  # someone holding the browser's cookies
    assert (await browser.callback(first, callback_url)).status_code == 302

    replay = await copy.callback(second, callback_url)

    assert replay.status_code == 403
    assert "location" not in replay.headers


# -- the same value presented to two replicas at once -----------------------------------------


def the_one(answers: list[httpx.Response], status: int) -> httpx.Response:
    (answer,) = [a for a in answers if a.status_code == status]
    return answer


AT_ONCE = 8  # presentations of one value, alternating between the two replicas


async def test_a_code_presented_to_two_replicas_at_once_is_redeemed_once(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    login = await Browser(idp).login(replicas[0])

    answers = list(await asyncio.gather(*(token(replicas[n % 2], login.code_form()) for n in range(AT_ONCE))))

    assert sorted(a.status_code for a in answers) == [200] + [400] * (AT_ONCE - 1)
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}
    assert idp.token_calls == 1  # the others never reached the IdP


async def test_a_refresh_token_presented_to_two_replicas_at_once_is_honoured_once_and_revokes_its_family(
    idp: IdP, replicas: tuple[Replica, Replica]
) -> None:
    first, second = replicas
    login, tokens = await tokens_after_login(idp, first)
    form = refresh_form(login, tokens["refresh_token"])

    answers = list(await asyncio.gather(token(first, form), token(second, form)))
    assert sorted(a.status_code for a in answers) == [200, 400]
    assert the_one(answers, 400).json()["error"] == "invalid_grant"
    # The winner's new token belongs to the family the second presentation revoked.
    after = await token(second, refresh_form(login, the_one(answers, 200).json()["refresh_token"]))

    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")


async def test_a_consent_form_submitted_to_two_replicas_at_once_starts_one_login(
    idp: IdP, replicas: tuple[Replica, Replica]
) -> None:
    first, second = replicas
    browser = Browser(idp)
    client_id = await browser.register(first)
    form = await browser.consent_form(first, client_id, pkce_pair()[1])
    copy = Browser(idp, cookies=httpx.Cookies(browser.cookies))

    answers = list(await asyncio.gather(browser.approve(first, form), copy.approve(second, form)))

    assert sorted(a.status_code for a in answers) == [303, 400]
    assert "already used" in the_one(answers, 400).text


async def test_an_idp_answer_relayed_to_two_replicas_at_once_gives_one_code(idp: IdP, replicas: tuple[Replica, Replica]) -> None:
    first, second = replicas
    browser = Browser(idp)
    client_id = await browser.register(first)
    consent = await browser.approve(first, await browser.consent_form(first, client_id, pkce_pair()[1]))
    callback_url = await browser.at_idp(consent.headers["location"])
    copy = Browser(idp, cookies=httpx.Cookies(browser.cookies))

    answers = list(await asyncio.gather(browser.callback(first, callback_url), copy.callback(second, callback_url)))

    assert sorted(a.status_code for a in answers) == [302, 403]
    assert "location" not in the_one(answers, 403).headers


# -- rate limits -------------------------------------------------------------------------------

TWO_A_MINUTE = RateLimit(2, 60.0)


async def register(replica: Replica, address: str) -> Any:
    async with replica.client(address) as http:
        return await http.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:5/cb"]})


async def authorize(replica: Replica, address: str) -> Any:
    async with replica.client(address) as http:
        return await http.get("/oauth/authorize", params={"client_id": "some-client", "response_type": "code"})


async def token_request(replica: Replica, address: str) -> Any:
    return await token(replica, {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "c"}, address)


ENDPOINTS = {
    "register": (register, RateLimits(register_ip=TWO_A_MINUTE), "application/json"),
    "authorize": (authorize, RateLimits(authorize_ip=TWO_A_MINUTE), "text/html"),
    "token": (token_request, RateLimits(token_ip=TWO_A_MINUTE), "application/json"),
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_an_address_over_its_limit_is_answered_429_with_retry_after_by_every_replica(
    idp: IdP, strict_on: StrictFactory, endpoint: str
) -> None:
    call, limits, media_type = ENDPOINTS[endpoint]
    first, second = make_replica(idp, strict_on(rate_limits=limits)), make_replica(idp, strict_on(rate_limits=limits))
    try:
        admitted = [await call(first, "203.0.113.1"), await call(second, "203.0.113.1")]
        refused = await call(first, "203.0.113.1")
        elsewhere = await call(second, "203.0.113.2")
    finally:
        await first.aclose()
        await second.aclose()

    assert 429 not in [r.status_code for r in admitted]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["content-type"].startswith(media_type)
    assert refused.headers["cache-control"] == "no-store"
    assert "temporarily_unavailable" in refused.text
    assert "location" not in refused.headers
    assert elsewhere.status_code != 429


@pytest.mark.parametrize(
    ("endpoint", "limits"),
    [
        ("authorize", RateLimits(authorize_ip=None, authorize_client_ip=RateLimit(1, 60.0))),
        ("token", RateLimits(token_ip=None, token_client_ip=RateLimit(1, 60.0))),
    ],
)
async def test_a_client_over_its_limit_from_one_address_is_refused_there_only(
    idp: IdP, strict_on: StrictFactory, endpoint: str, limits: RateLimits
) -> None:
    replica = make_replica(idp, strict_on(rate_limits=limits))
    # The token endpoint counts a client once it has authenticated: registered ones here.
    clients = {name: await Browser(idp).register(replica, name) for name in ("client-a", "client-b")}

    async def call(name: str, address: str) -> int:
        client_id = clients[name]
        if endpoint == "token":
            form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": client_id}
            return (await token(replica, form, address)).status_code
        async with replica.client(address) as http:
            return (await http.get("/oauth/authorize", params={"client_id": client_id})).status_code

    try:
        statuses = {
            "first": await call("client-a", "203.0.113.1"),
            "again": await call("client-a", "203.0.113.1"),
            "other address": await call("client-a", "203.0.113.2"),
            "other client": await call("client-b", "203.0.113.1"),
        }
    finally:
        await replica.aclose()

    assert statuses["again"] == 429
    assert 429 not in (statuses["first"], statuses["other address"], statuses["other client"])


# -- Redis away --------------------------------------------------------------------------------


async def test_with_redis_down_and_refuse_every_strict_endpoint_answers_503_with_retry_after(
    idp: IdP, own_redis_server: RedisServer
) -> None:
    replica = make_replica(idp, StrictMode.redis(own_redis_server.url, timeout=0.3))
    try:
        browser = Browser(idp)
        login = await browser.login(replica)
        consent_form = await browser.consent_form(replica, login.client_id, pkce_pair()[1])
        own_redis_server.kill()
        answers = {
            "register": await register(replica, "203.0.113.1"),
            "authorize": await browser.authorize(replica, login.client_id, pkce_pair()[1]),
            "consent": await browser.approve(replica, consent_form),
            "token": await token(replica, login.code_form()),
        }
        async with replica.client() as http:
            answers["revoke"] = await http.post("/oauth/revoke", data={"token": "x", "client_id": login.client_id})
    finally:
        await replica.aclose()

    statuses = {name: answer.status_code for name, answer in answers.items()}
    # Revoking a token that is not one of the shim's needs no strict-mode record.
    assert statuses == {"register": 503, "authorize": 503, "consent": 503, "token": 503, "revoke": 200}
    for name in ("register", "authorize", "consent", "token"):
        assert answers[name].headers["retry-after"] == "5"
        assert "temporarily_unavailable" in answers[name].text
    assert idp.token_calls == 0


async def test_with_redis_down_and_allow_a_whole_login_and_refresh_work(idp: IdP, own_redis_server: RedisServer) -> None:
    replica = make_replica(idp, StrictMode.redis(own_redis_server.url, timeout=0.3, on_unavailable="allow"))
    own_redis_server.kill()
    try:
        login, tokens = await tokens_after_login(idp, replica)
        refreshed = await token(replica, refresh_form(login, tokens["refresh_token"]))
    finally:
        await replica.aclose()

    assert refreshed.status_code == 200, refreshed.text
    assert "access_token" in refreshed.json()


async def test_revoking_a_refresh_token_while_redis_is_down_answers_503(idp: IdP, own_redis_server: RedisServer) -> None:
    replica = make_replica(idp, StrictMode.redis(own_redis_server.url, timeout=0.3))
    try:
        login, tokens = await tokens_after_login(idp, replica)
        own_redis_server.kill()
        async with replica.client() as http:
            answer = await http.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": login.client_id})
    finally:
        await replica.aclose()

    assert (answer.status_code, answer.json()["error"]) == (503, "temporarily_unavailable")
    assert answer.headers["retry-after"] == "5"

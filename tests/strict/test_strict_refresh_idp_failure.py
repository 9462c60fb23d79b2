"""A refresh the IdP failed to answer, in strict mode: the client's retry is not a reuse.

Strict mode records a refresh token's use before the IdP is called (RFC 9700 §4.14.2 reuse
detection). When the IdP then fails (connection refused, timeout, 5xx, busy), the client got no
new token and retries with the same one once the IdP is back: that retry must be honoured, not
taken for a reuse that revokes the family. An IdP that refused the grant itself
(``invalid_grant``) leaves the use recorded.

The IdP is the development IdP (authlib based); its token endpoint misbehaves through a fault
injecting httpx transport in front of it. Each behaviour runs on both stores (this process's
memory and a real redis-server) and in both token modes (the IdP's tokens passed through, and
the shim's own issued tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
import httpx
import pytest

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.issued_refresh import ISSUED_REFRESH
from mcp_oauth_shim.payloads import RefreshToken
from mcp_oauth_shim.strict import RefreshUse, StrictMode
from tests.peers.redis_server import RedisServer

from .shim_replicas import IDP_ISSUER, PUBLIC_URL, RESOURCE, SECRET_KEY, Browser, IdP, Replica, make_idp, refresh_form, token

pytestmark = pytest.mark.anyio

# A fault answers the IdP's token endpoint in the IdP's place: an answer, or an exception that
# httpx raises when the IdP cannot be reached or does not answer in time.
Fault = Callable[[httpx.Request], Awaitable[httpx.Response]]


def answer(status: int, body: dict[str, str], **headers: str) -> Fault:
    async def fault(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return fault


def raises(error: type[httpx.TransportError]) -> Fault:
    async def fault(request: httpx.Request) -> httpx.Response:
        raise error("injected", request=request)

    return fault


# The IdP's failure, and the status the client is answered with meanwhile.
IDP_FAILURES: dict[str, tuple[Fault, int]] = {
    "connection refused": (raises(httpx.ConnectError), 502),
    "timeout": (raises(httpx.ReadTimeout), 504),
    "500": (answer(500, {"error": "server_error"}), 502),
    "503 with Retry-After": (answer(503, {"error": "temporarily_unavailable"}, Retry_After="7"), 503),
    "429 with Retry-After": (answer(429, {"error": "slow_down"}, Retry_After="7"), 503),
}
INVALID_GRANT = answer(400, {"error": "invalid_grant", "error_description": "The refresh token was revoked."})


class FaultyTokenEndpoint(httpx.AsyncBaseTransport):
    """The IdP reached in process; while :attr:`fault` is set, its token endpoint is answered
    by the fault instead (the IdP never sees the request). ``held``: when set, a faulted
    request waits for it first, so a test can act while the IdP has not answered yet."""

    def __init__(self, idp: IdP) -> None:
        self.idp = idp
        self.inner = httpx.ASGITransport(app=idp.counted)
        self.fault: Fault | None = None
        self.held: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fault is not None and request.url.path == "/oauth/token":
            self.arrived.set()
            if self.held is not None:
                await self.held.wait()
            return await self.fault(request)
        return await self.inner.handle_async_request(request)


@dataclass
class Setup:
    idp: IdP
    faults: FaultyTokenEndpoint
    replica: Replica
    strict: StrictMode

    async def login(self) -> tuple[dict[str, str], str]:
        """A complete login: the refresh form's client part and the first refresh token."""
        login = await Browser(self.idp).login(self.replica)
        answer = await token(self.replica, login.code_form())
        assert answer.status_code == 200, answer.text
        return refresh_form(login, ""), str(answer.json()["refresh_token"])

    async def refresh(self, form: dict[str, str], refresh_token: str) -> httpx.Response:
        return await token(self.replica, {**form, "refresh_token": refresh_token})

    def family_of(self, refresh_token: str) -> str:
        """The strict-mode family a refresh token belongs to, in either token mode."""
        sealer = self.replica.shim.context.sealer
        if self.replica.shim.issue_tokens:
            family = sealer.unseal(ISSUED_REFRESH, refresh_token, max_age=3600)["fm"]
        else:
            family = RefreshToken.open(sealer, refresh_token, max_age=3600).family
        assert isinstance(family, str)
        return family


def make_setup(idp: IdP, strict: StrictMode, issue_tokens: bool) -> Setup:
    faults = FaultyTokenEndpoint(idp)
    http = httpx.AsyncClient(transport=faults, base_url=IDP_ISSUER)
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        resource=RESOURCE,
        upstream=idp.upstream(),
        secret_keys=[SECRET_KEY],
        http_client=http,
        strict=strict,
        issue_tokens=issue_tokens,
    )
    return Setup(idp, faults, Replica(shim, http), strict)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def strict(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[StrictMode]:
    if request.param == "memory":
        mode = StrictMode.in_memory()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        mode = StrictMode.redis(server.url, key_prefix=key_prefix)
    yield mode
    await mode.aclose()  # again after the shim's own aclose: redis.asyncio allows it


@pytest.fixture(params=["passthrough", "issued tokens"])
async def setup(request: pytest.FixtureRequest, strict: StrictMode) -> AsyncIterator[Setup]:
    built = make_setup(make_idp(), strict, issue_tokens=request.param == "issued tokens")
    yield built
    await built.replica.aclose()


def refused_as_used(response: httpx.Response) -> bool:
    return (response.status_code, response.json().get("error")) == (400, "invalid_grant")


# -- the IdP failed: the retry is a first use --------------------------------------------------


@pytest.mark.parametrize("failure", IDP_FAILURES)
async def test_a_refresh_retried_after_the_idp_failed_succeeds_and_the_family_lives_on(setup: Setup, failure: str) -> None:
    form, first = await setup.login()
    fault, status = IDP_FAILURES[failure]
    setup.faults.fault = fault
    failed = await setup.refresh(form, first)
    setup.faults.fault = None

    retried = await setup.refresh(form, first)
    assert retried.status_code == 200, retried.text
    following = await setup.refresh(form, retried.json()["refresh_token"])

    assert failed.status_code == status, failed.text
    assert following.status_code == 200, following.text
    assert await setup.strict.is_family_revoked(setup.family_of(first)) is False


async def test_a_token_retried_after_an_idp_failure_is_still_single_use(setup: Setup) -> None:
    form, first = await setup.login()
    setup.faults.fault = IDP_FAILURES["500"][0]
    await setup.refresh(form, first)
    setup.faults.fault = None
    newer = (await setup.refresh(form, first)).json()["refresh_token"]

    reuse = await setup.refresh(form, first)
    after = await setup.refresh(form, newer)

    assert refused_as_used(reuse)
    assert refused_as_used(after)
    assert await setup.strict.is_family_revoked(setup.family_of(first)) is True


# -- the IdP refused the grant: the use stands ------------------------------------------------


async def test_a_refresh_the_idp_refused_with_invalid_grant_counts_as_a_use(setup: Setup) -> None:
    form, first = await setup.login()
    setup.faults.fault = INVALID_GRANT
    refused = await setup.refresh(form, first)
    setup.faults.fault = None
    calls = setup.idp.token_calls

    retried = await setup.refresh(form, first)

    assert refused_as_used(refused)
    # The IdP said the grant is dead; the retry is a reuse, refused before the IdP is asked.
    assert refused_as_used(retried)
    assert setup.idp.token_calls == calls
    assert await setup.strict.is_family_revoked(setup.family_of(first)) is True


# -- reuse detection still holds ---------------------------------------------------------------


async def test_two_presentations_at_once_after_an_idp_failure_honour_one_and_revoke_the_family(setup: Setup) -> None:
    form, first = await setup.login()
    setup.faults.fault = IDP_FAILURES["connection refused"][0]
    await setup.refresh(form, first)
    setup.faults.fault = None

    answers = await asyncio.gather(setup.refresh(form, first), setup.refresh(form, first))

    assert sorted(a.status_code for a in answers) == [200, 400]
    honoured = next(a for a in answers if a.status_code == 200)
    assert refused_as_used(await setup.refresh(form, honoured.json()["refresh_token"]))


async def test_a_reuse_while_the_idp_is_failing_keeps_the_family_revoked(setup: Setup) -> None:
    form, first = await setup.login()
    setup.faults.fault, setup.faults.held = IDP_FAILURES["503 with Retry-After"][0], asyncio.Event()
    in_flight = asyncio.ensure_future(setup.refresh(form, first))
    await asyncio.wait_for(setup.faults.arrived.wait(), 10)

    reuse = await setup.refresh(form, first)  # a copy presented while the first waits on the IdP
    setup.faults.held.set()
    failed = await in_flight
    setup.faults.fault = None
    retried = await setup.refresh(form, first)

    assert refused_as_used(reuse)
    assert failed.status_code == 503
    assert refused_as_used(retried)
    assert await setup.strict.is_family_revoked(setup.family_of(first)) is True


# -- the store, directly -----------------------------------------------------------------------


def in_an_hour() -> float:
    return time.time() + 3600


async def test_a_released_refresh_token_is_a_first_use_again(strict: StrictMode) -> None:
    await strict.use_refresh("family-A", "token-1", in_an_hour())

    released = await strict.release_refresh("family-A", "token-1")

    assert released is True
    assert await strict.use_refresh("family-A", "token-1", in_an_hour()) is RefreshUse.FIRST_USE
    assert await strict.use_refresh("family-A", "token-1", in_an_hour()) is RefreshUse.REUSED


async def test_releasing_a_token_of_a_revoked_family_does_not_revoke_it_less(strict: StrictMode) -> None:
    await strict.use_refresh("family-A", "token-1", in_an_hour())
    assert await strict.use_refresh("family-A", "token-1", in_an_hour()) is RefreshUse.REUSED

    released = await strict.release_refresh("family-A", "token-1")

    assert released is False
    assert await strict.is_family_revoked("family-A") is True
    assert await strict.use_refresh("family-A", "token-1", in_an_hour()) is RefreshUse.REVOKED
    assert await strict.use_refresh("family-A", "token-2", in_an_hour()) is RefreshUse.REVOKED


async def test_releasing_a_token_never_used_releases_nothing(strict: StrictMode) -> None:
    assert await strict.release_refresh("family-A", "token-1") is False


@pytest.mark.redis
async def test_a_release_redis_cannot_make_leaves_the_idps_error_as_the_answer(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    built = make_setup(make_idp(), StrictMode.redis(own_redis_server.url, timeout=0.3), issue_tokens=False)
    try:
        form, first = await built.login()

        async def redis_dies_then_the_idp_fails(request: httpx.Request) -> httpx.Response:
            own_redis_server.kill()  # after the use was recorded, before it can be released
            return httpx.Response(500, json={"error": "server_error"})

        built.faults.fault = redis_dies_then_the_idp_fails
        with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.strict"):
            failed = await built.refresh(form, first)
    finally:
        await built.replica.aclose()

    assert (failed.status_code, failed.json()["error"]) == (502, "server_error")
    assert any("release_refresh not done" in record.getMessage() for record in caplog.records)


async def test_a_code_the_idp_failed_to_exchange_is_spent_and_the_client_starts_again(setup: Setup) -> None:
    """As documented: unlike a refresh token's use, a code's single use is not released."""
    login = await Browser(setup.idp).login(setup.replica)
    setup.faults.fault = answer(500, {"error": "server_error"})
    failed = await token(setup.replica, login.code_form())
    setup.faults.fault = None

    retry = await token(setup.replica, login.code_form())

    assert failed.status_code == 502
    assert refused_as_used(retry)
    assert "already used" in retry.json()["error_description"]

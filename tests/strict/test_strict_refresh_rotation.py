"""Refresh-token rotation in strict mode in front of an IdP that does not rotate its own refresh
tokens (Google, GitHub apps without expiring tokens), and refresh tokens sealed before strict
mode was turned on (no family). Strict mode in memory: the rule is the same on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.payloads import RefreshToken
from mcp_oauth_shim.sealing import digest
from mcp_oauth_shim.strict import StrictMode

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.test"
SHIM_URL = "http://127.0.0.1:8000"
UPSTREAM_REFRESH = "the-idps-long-lived-refresh-token"


class NonRotatingIdP:
    """Answers every refresh with a new access token and no refresh token; records the refresh
    tokens it was shown."""

    def __init__(self) -> None:
        self.presented: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/token", self._token, methods=["POST"]),
            ]
        )

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize", "token_endpoint": ISSUER + "/token"}
        )

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        self.presented.append(str(form.get("refresh_token")))
        return JSONResponse({"access_token": f"access-{len(self.presented)}", "token_type": "Bearer", "expires_in": 60})


@pytest.fixture
def idp() -> NonRotatingIdP:
    return NonRotatingIdP()


async def shim_and_client(idp: NonRotatingIdP, strict: StrictMode | None) -> tuple[OAuthShim, httpx.AsyncClient, str]:
    shim = OAuthShim(
        public_url=SHIM_URL,
        upstream=Upstream.oidc(issuer=ISSUER, client_id="shim", client_secret="shim-secret"),
        secret_keys=["n" * 48],
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app)),
        strict=strict,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=shim.app), base_url=SHIM_URL)
    registered = await http.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:5/cb"]})
    return shim, http, registered.json()["client_id"]


@pytest.fixture
async def strict_shim(idp: NonRotatingIdP) -> AsyncIterator[tuple[OAuthShim, httpx.AsyncClient, str]]:
    shim, http, client_id = await shim_and_client(idp, StrictMode.in_memory())
    yield shim, http, client_id
    await http.aclose()
    await shim.aclose()


def sealed_without_family(shim: OAuthShim, client_id: str) -> str:
    """A refresh token as the shim sealed it without strict mode (and before families existed)."""
    return RefreshToken(UPSTREAM_REFRESH, digest(client_id), "openid").seal(shim.context.sealer)


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> httpx.Response:
    return await http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id})


async def test_a_refresh_without_a_new_idp_token_gets_a_new_sealed_token_wrapping_the_old_one(
    idp: NonRotatingIdP, strict_shim: tuple[OAuthShim, httpx.AsyncClient, str]
) -> None:
    shim, http, client_id = strict_shim
    first = await refresh(http, client_id, sealed_without_family(shim, client_id))
    assert first.status_code == 200, first.text
    second = await refresh(http, client_id, first.json()["refresh_token"])
    assert second.status_code == 200, second.text

    issued = RefreshToken.open(shim.context.sealer, second.json()["refresh_token"], max_age=60)
    assert issued.upstream_refresh_token == UPSTREAM_REFRESH
    assert issued.family is not None
    assert idp.presented == [UPSTREAM_REFRESH, UPSTREAM_REFRESH]


async def test_a_token_sealed_without_a_family_reused_revokes_the_family_it_started(
    idp: NonRotatingIdP, strict_shim: tuple[OAuthShim, httpx.AsyncClient, str]
) -> None:
    shim, http, client_id = strict_shim
    old = sealed_without_family(shim, client_id)
    newer = (await refresh(http, client_id, old)).json()["refresh_token"]

    reuse = await refresh(http, client_id, old)
    after = await refresh(http, client_id, newer)

    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")
    assert len(idp.presented) == 1


async def test_without_strict_mode_a_non_rotating_idp_gives_no_new_refresh_token(idp: NonRotatingIdP) -> None:
    shim, http, client_id = await shim_and_client(idp, None)
    old = sealed_without_family(shim, client_id)
    try:
        answers = [await refresh(http, client_id, old) for _ in range(2)]
    finally:
        await http.aclose()
        await shim.aclose()

    assert [a.status_code for a in answers] == [200, 200]
    assert all("refresh_token" not in a.json() for a in answers)


@pytest.mark.parametrize(
    ("wire", "family", "token_id"),
    [
        ({"u": "rt", "c": "fp", "sc": "openid"}, None, None),
        ({"u": "rt", "c": "fp", "sc": "openid", "fm": "fam", "id": "tok"}, "fam", "tok"),
    ],
)
def test_refresh_tokens_with_and_without_a_family_open(wire: dict[str, str], family: str | None, token_id: str | None) -> None:
    token = RefreshToken.from_wire(wire)
    assert (token.family, token.token_id) == (family, token_id)
    assert RefreshToken.from_wire(token.to_wire()) == token


@pytest.mark.parametrize(
    "wire", [{"u": "rt", "c": "fp", "fm": "fam"}, {"u": "rt", "c": "fp", "id": "tok"}, {"u": "rt", "c": "fp", "fm": 1, "id": "t"}]
)
def test_a_refresh_token_with_half_a_lineage_is_malformed(wire: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        RefreshToken.from_wire(wire)


def test_a_refresh_token_without_a_family_keeps_the_wire_format_of_earlier_versions() -> None:
    assert RefreshToken("rt", "fp", "openid").to_wire() == {"u": "rt", "c": "fp", "sc": "openid"}


async def test_a_request_refused_by_two_limits_is_told_the_longer_wait() -> None:
    from mcp_oauth_shim.strict import RateBucket, RateLimit, RateLimits
    from mcp_oauth_shim.strict.checks import RateLimited, check_rates

    clock = [1000.0]
    strict = StrictMode.in_memory(
        rate_limits=RateLimits(token_ip=RateLimit(1, 10.0), token_client_ip=RateLimit(1, 60.0)), clock=lambda: clock[0]
    )
    hits = ((RateBucket.TOKEN_IP, "203.0.113.1"), (RateBucket.TOKEN_CLIENT_IP, "client|203.0.113.1"))
    await check_rates(strict, *hits)

    with pytest.raises(RateLimited) as refused:
        await check_rates(strict, *hits)

    assert refused.value.decision.retry_after_seconds == 60

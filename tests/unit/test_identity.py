"""Identity: from an ID token, from UserInfo, from GitHub's user API.

HTTP sources run against httpx.MockTransport handlers that answer with the response shapes the
providers document (GitHub REST "Get the authenticated user" and "List email addresses for the
authenticated user"; OpenID Connect Core §5.3.2), and inject the faults (401, 5xx, timeouts,
garbage, oversized bodies) that a real provider cannot be made to produce on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from joserfc.jwk import RSAKey

from mcp_oauth_shim.identity import (
    GitHubResolver,
    Identity,
    IdTokenResolver,
    UpstreamTokens,
    UserinfoResolver,
    fetch_github_user,
    fetch_userinfo,
    identity_from_claims,
    verify_id_token,
)
from mcp_oauth_shim.signing_keys import PublicKeys
from mcp_oauth_shim.upstream import HttpxTransport, UpstreamError

pytestmark = pytest.mark.anyio

IDP = "https://idp.example.com/"
CLIENT_ID = "shim-at-idp"
NOW = 1_800_000_000
USERINFO = "https://idp.example.com/userinfo"
IDP_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "idp-1"})
OTHER_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "idp-1"})
IDP_JWKS = {"keys": [{**IDP_KEY.as_dict(private=False), "use": "sig"}]}

# GitHub's documented example for GET /user (a subset of the members, same shapes).
GITHUB_USER = {
    "login": "octocat",
    "id": 1,
    "node_id": "MDQ6VXNlcjE=",
    "avatar_url": "https://github.com/images/error/octocat_happy.gif",
    "type": "User",
    "site_admin": False,
    "name": "monalisa octocat",
    "company": "GitHub",
    "blog": "https://github.com/blog",
    "location": "San Francisco",
    "email": "octocat@github.com",
    "hireable": False,
    "bio": "There once was...",
    "public_repos": 2,
    "created_at": "2008-01-14T04:33:35Z",
    "two_factor_authentication": True,
}
# GitHub's documented example for GET /user/emails.
GITHUB_EMAILS = [
    {"email": "octocat@users.noreply.github.com", "verified": True, "primary": False, "visibility": None},
    {"email": "octocat@github.com", "verified": True, "primary": True, "visibility": "public"},
]


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def json_response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


class Recorder:
    """A handler answering by path, recording what was asked."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers[request.url.path]


# -- claims -> Identity -------------------------------------------------------------------------


def test_identity_from_claims_keeps_standard_claims_only() -> None:
    identity = identity_from_claims(
        {"sub": "u1", "iss": IDP, "name": "Ada", "email": "a@x", "email_verified": True, "nonce": "n", "at_hash": "h"}
    )
    assert identity == Identity(subject="u1", issuer=IDP, name="Ada", email="a@x", email_verified=True)
    assert set(identity.claims) == {"sub", "iss", "name", "email", "email_verified"}


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 5}], ids=["missing", "empty", "number"])
def test_identity_needs_a_subject(claims: dict) -> None:
    with pytest.raises(UpstreamError, match="no sub"):
        identity_from_claims(claims)


def test_identity_ignores_claims_of_the_wrong_type() -> None:
    identity = identity_from_claims({"sub": "u1", "email": ["a@x"], "email_verified": "true", "name": 3})
    assert (identity.email, identity.email_verified, identity.name) == (None, None, None)


def test_token_claims_are_the_known_identity_claims() -> None:
    identity = Identity(subject="u1", name="Ada", email="a@x", email_verified=True, preferred_username="ada")
    assert identity.token_claims() == {"name": "Ada", "preferred_username": "ada", "email": "a@x", "email_verified": True}


# -- ID tokens (OpenID Connect Core §3.1.3.7) ------------------------------------------------------


def id_claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": IDP, "aud": CLIENT_ID, "sub": "u1", "iat": NOW, "exp": NOW + 600, "nonce": "n-1", "name": "Ada"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def id_token(claims: dict[str, Any] | None = None, key: RSAKey = IDP_KEY, alg: str = "RS256", **header: Any) -> str:
    return pyjwt.encode(id_claims() if claims is None else claims, key.private_key, algorithm=alg, headers={"kid": "idp-1", **header})


def check_id_token(token: str, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(issuer=IDP, client_id=CLIENT_ID, nonce="n-1", now=NOW)
    arguments.update(overrides)
    return verify_id_token(token, IDP_JWKS, **arguments)


def test_valid_id_token_gives_its_claims() -> None:
    assert check_id_token(id_token())["sub"] == "u1"


def test_id_token_with_azp_equal_to_client_and_several_audiences_passes() -> None:
    assert check_id_token(id_token(id_claims(aud=[CLIENT_ID, "other"], azp=CLIENT_ID)))["sub"] == "u1"


def test_id_token_without_kid_uses_the_only_fitting_key() -> None:
    token = pyjwt.encode(id_claims(), IDP_KEY.private_key, algorithm="RS256")
    assert check_id_token(token)["sub"] == "u1"


def test_id_token_nonce_is_not_checked_when_none_was_sent() -> None:
    assert check_id_token(id_token(id_claims(nonce=None)), nonce=None)["sub"] == "u1"


ID_TOKEN_REFUSALS: list[tuple[str, Callable[[], str], str]] = [
    ("other-key", lambda: id_token(key=OTHER_KEY), "invalid signature"),
    ("unknown-kid", lambda: id_token(kid="idp-9"), "does not publish"),
    ("hs256", lambda: pyjwt.encode(id_claims(), "x" * 32, algorithm="HS256", headers={"kid": "idp-1"}), "not accepted|well-formed"),
    ("alg-none", lambda: pyjwt.encode(id_claims(), None, algorithm="none", headers={"kid": "idp-1"}), "not accepted|well-formed"),
    ("iss-other", lambda: id_token(id_claims(iss="https://evil.example.com/")), "another issuer"),
    ("aud-other", lambda: id_token(id_claims(aud="someone-else")), "not addressed to this client"),
    ("azp-other", lambda: id_token(id_claims(aud=[CLIENT_ID, "x"], azp="x")), "another party"),
    ("expired", lambda: id_token(id_claims(exp=NOW - 61)), "expired"),
    ("iat-future", lambda: id_token(id_claims(iat=NOW + 61)), "in the future"),
    ("no-exp", lambda: id_token(id_claims(exp=None)), "lacks exp"),
    ("exp-infinity", lambda: id_token(id_claims(exp=float("inf"))), "lacks exp"),
    ("no-sub", lambda: id_token(id_claims(sub=None)), "names no user"),
    ("garbage", lambda: "not-a-jwt", "well-formed"),
]


@pytest.mark.parametrize(("make", "problem"), [(m, p) for _, m, p in ID_TOKEN_REFUSALS], ids=[n for n, _, _ in ID_TOKEN_REFUSALS])
def test_bad_id_tokens_are_an_upstream_error(make: Callable[[], str], problem: str) -> None:
    with pytest.raises(UpstreamError, match=problem) as caught:
        check_id_token(make())
    assert caught.value.status_code == 502


@pytest.mark.parametrize("nonce", [None, "n-2"], ids=["missing", "other"])
def test_id_token_with_another_nonce_is_invalid_grant(nonce: str | None) -> None:
    with pytest.raises(UpstreamError) as caught:
        check_id_token(id_token(id_claims(nonce=nonce)))
    assert (caught.value.status_code, caught.value.error) == (400, "invalid_grant")


def test_id_token_with_a_key_published_for_another_algorithm_is_refused() -> None:
    jwks = {"keys": [{**IDP_KEY.as_dict(private=False), "alg": "RS512"}]}
    with pytest.raises(UpstreamError, match="another algorithm"):
        verify_id_token(id_token(), jwks, issuer=IDP, client_id=CLIENT_ID, now=NOW)


def test_id_token_against_a_non_jwks_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="not a JWKS"):
        verify_id_token(id_token(), {"no": "keys"}, issuer=IDP, client_id=CLIENT_ID, now=NOW)


# -- UserInfo (OpenID Connect Core §5.3) ----------------------------------------------------------


async def userinfo(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> Identity:
    async with client(handler) as http:
        return await fetch_userinfo(HttpxTransport(http), USERINFO, "upstream-at", **options)


async def test_userinfo_sends_the_upstream_token_as_bearer() -> None:
    recorder = Recorder({"/userinfo": json_response(200, {"sub": "u1"})})
    await userinfo(recorder)
    assert recorder.requests[0].headers["authorization"] == "Bearer upstream-at"


async def test_userinfo_gives_the_identity() -> None:
    body = {"sub": "u1", "name": "Ada Lovelace", "email": "ada@example.com", "email_verified": True, "preferred_username": "ada"}
    identity = await userinfo(Recorder({"/userinfo": json_response(200, body)}), issuer=IDP)
    assert identity == Identity(
        subject="u1", issuer=IDP, name="Ada Lovelace", email="ada@example.com", email_verified=True, preferred_username="ada"
    )


async def test_userinfo_for_another_subject_than_the_id_token_is_refused() -> None:
    with pytest.raises(UpstreamError, match="another user"):
        await userinfo(Recorder({"/userinfo": json_response(200, {"sub": "u2"})}), expected_subject="u1")


def raises(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


class Dripping(httpx.AsyncByteStream):
    """A body that starts and never ends."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"sub": "u1"'
        await asyncio.sleep(3600)


HTTP_FAULTS: list[tuple[str, Callable[[httpx.Request], httpx.Response], int, str]] = [
    ("401", lambda r: json_response(401, {"error": "invalid_token"}), 400, "invalid_grant"),
    ("500", lambda r: httpx.Response(500), 502, "temporarily_unavailable"),
    ("503", lambda r: httpx.Response(503), 503, "temporarily_unavailable"),
    ("429", lambda r: httpx.Response(429), 503, "temporarily_unavailable"),
    ("403", lambda r: httpx.Response(403), 502, "server_error"),
    ("timeout", raises(httpx.ReadTimeout("slow")), 504, "temporarily_unavailable"),
    ("connect-error", raises(httpx.ConnectError("refused")), 502, "temporarily_unavailable"),
    ("not-json", lambda r: httpx.Response(200, content=b"<html>"), 502, "server_error"),
    ("deep-json", lambda r: httpx.Response(200, content=b"[" * 100_000), 502, "server_error"),
    ("json-list", lambda r: json_response(200, [{"sub": "u1"}]), 502, "server_error"),
    ("no-sub", lambda r: json_response(200, {"name": "x"}), 502, "server_error"),
    ("too-large", lambda r: json_response(200, {"sub": "u1", "pad": "x" * 300_000}), 502, "server_error"),
]


@pytest.mark.parametrize(
    ("handler", "status", "error"), [(h, s, e) for _, h, s, e in HTTP_FAULTS], ids=[n for n, _, _, _ in HTTP_FAULTS]
)
async def test_userinfo_failures_map_to_upstream_errors(handler: Any, status: int, error: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await userinfo(handler)
    assert (caught.value.status_code, caught.value.error) == (status, error)


@pytest.mark.parametrize(("handler", "status", "error"), [(h, s, e) for _, h, s, e in HTTP_FAULTS], ids=[n for n, _, _, _ in HTTP_FAULTS])
async def test_userinfo_failure_descriptions_hold_no_token(handler: Any, status: int, error: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        await userinfo(handler)
    assert "upstream-at" not in caught.value.description


async def test_userinfo_body_that_never_ends_times_out() -> None:
    with pytest.raises(UpstreamError) as caught:
        await userinfo(lambda r: httpx.Response(200, stream=Dripping()), timeout=0.05)
    assert caught.value.status_code == 504


# -- GitHub's user API -----------------------------------------------------------------------------


async def github(recorder: Recorder, **options: Any) -> Identity:
    async with client(recorder) as http:
        return await fetch_github_user(HttpxTransport(http), "gho_token", **options)


async def test_github_request_carries_the_documented_headers() -> None:
    recorder = Recorder({"/user": json_response(200, GITHUB_USER)})
    await github(recorder)
    headers = recorder.requests[0].headers
    assert (headers["authorization"], headers["accept"], headers["x-github-api-version"]) == (
        "Bearer gho_token",
        "application/vnd.github+json",
        "2022-11-28",
    )


async def test_github_subject_is_the_numeric_id_and_login_the_username() -> None:
    identity = await github(Recorder({"/user": json_response(200, GITHUB_USER)}))
    assert (identity.subject, identity.preferred_username, identity.name, identity.issuer) == (
        "1",
        "octocat",
        "monalisa octocat",
        "https://github.com",
    )


async def test_github_public_email_is_used_without_asking_for_emails() -> None:
    recorder = Recorder({"/user": json_response(200, GITHUB_USER)})
    identity = await github(recorder)
    assert (identity.email, [r.url.path for r in recorder.requests]) == ("octocat@github.com", ["/user"])


async def test_github_hidden_email_comes_from_the_primary_verified_address() -> None:
    recorder = Recorder({"/user": json_response(200, {**GITHUB_USER, "email": None}), "/user/emails": json_response(200, GITHUB_EMAILS)})
    identity = await github(recorder)
    assert (identity.email, identity.email_verified) == ("octocat@github.com", True)


async def test_github_without_a_primary_verified_address_has_no_email() -> None:
    unverified = [{"email": "o@x", "verified": False, "primary": True, "visibility": None}]
    recorder = Recorder({"/user": json_response(200, {**GITHUB_USER, "email": None}), "/user/emails": json_response(200, unverified)})
    assert (await github(recorder)).email is None


@pytest.mark.parametrize("status", [403, 404])
async def test_github_emails_without_the_scope_give_no_email(status: int) -> None:
    recorder = Recorder({"/user": json_response(200, {**GITHUB_USER, "email": None}), "/user/emails": httpx.Response(status)})
    assert (await github(recorder)).email is None


async def test_github_emails_are_not_asked_when_switched_off() -> None:
    recorder = Recorder({"/user": json_response(200, {**GITHUB_USER, "email": None})})
    await github(recorder, fetch_emails=False)
    assert [r.url.path for r in recorder.requests] == ["/user"]


@pytest.mark.parametrize(
    ("handler", "status", "error"),
    [(h, s, e) for n, h, s, e in HTTP_FAULTS if n != "no-sub"],
    ids=[n for n, _, _, _ in HTTP_FAULTS if n != "no-sub"],
)
async def test_github_failures_map_to_upstream_errors(handler: Any, status: int, error: str) -> None:
    async with client(handler) as http:
        with pytest.raises(UpstreamError) as caught:
            await fetch_github_user(HttpxTransport(http), "gho_token")
    assert (caught.value.status_code, caught.value.error) == (status, error)


@pytest.mark.parametrize("user_id", [None, "1", True, 0], ids=["missing", "text", "bool", "zero"])
async def test_github_user_without_a_numeric_id_is_refused(user_id: Any) -> None:
    user = {k: v for k, v in GITHUB_USER.items() if k != "id"}
    if user_id is not None:
        user["id"] = user_id
    with pytest.raises(UpstreamError, match="numeric user id"):
        await github(Recorder({"/user": json_response(200, user)}))


async def test_github_api_url_is_configurable() -> None:
    recorder = Recorder({"/api/v3/user": json_response(200, GITHUB_USER)})
    async with client(recorder) as http:
        await fetch_github_user(HttpxTransport(http), "gho_token", api_url="https://ghe.example.com/api/v3/")
    assert str(recorder.requests[0].url) == "https://ghe.example.com/api/v3/user"


# -- resolvers ---------------------------------------------------------------------------------------


async def test_id_token_resolver_checks_times_on_the_real_clock() -> None:
    resolver = IdTokenResolver(keys=PublicKeys.from_jwks(IDP_JWKS), issuer=IDP, client_id=CLIENT_ID)
    token = pyjwt.encode(id_claims(iat=None, exp=None) | {"iat": 4102444700, "exp": 4102444800}, IDP_KEY.private_key, algorithm="RS256", headers={"kid": "idp-1"})
    async with client(Recorder({})) as http:
        with pytest.raises(UpstreamError, match="in the future"):
            # A token from 2100 is refused on today's clock: the resolver checks time.
            await resolver.resolve(HttpxTransport(http), UpstreamTokens("at", token, "n-1"))


async def test_id_token_resolver_gives_the_identity_of_a_current_id_token() -> None:
    import time

    now = int(time.time())
    resolver = IdTokenResolver(keys=PublicKeys.from_jwks(IDP_JWKS), issuer=IDP, client_id=CLIENT_ID)
    token = id_token(id_claims(iat=now, exp=now + 600))
    async with client(Recorder({})) as http:
        identity = await resolver.resolve(HttpxTransport(http), UpstreamTokens("at", token, "n-1"))
    assert (identity.subject, identity.name, identity.issuer) == ("u1", "Ada", IDP)


async def test_id_token_resolver_falls_back_to_userinfo_without_an_id_token() -> None:
    resolver = IdTokenResolver(keys=PublicKeys.from_jwks(IDP_JWKS), issuer=IDP, client_id=CLIENT_ID, userinfo_url=USERINFO)
    async with client(Recorder({"/userinfo": json_response(200, {"sub": "u9"})})) as http:
        assert (await resolver.resolve(HttpxTransport(http), UpstreamTokens("at"))).subject == "u9"


async def test_id_token_resolver_without_id_token_or_userinfo_is_an_upstream_error() -> None:
    resolver = IdTokenResolver(keys=PublicKeys.from_jwks(IDP_JWKS), issuer=IDP, client_id=CLIENT_ID)
    async with client(Recorder({})) as http:
        with pytest.raises(UpstreamError, match="no ID token"):
            await resolver.resolve(HttpxTransport(http), UpstreamTokens("at"))


async def test_userinfo_resolver_asks_userinfo() -> None:
    async with client(Recorder({"/userinfo": json_response(200, {"sub": "u3"})})) as http:
        assert (await UserinfoResolver(USERINFO, IDP).resolve(HttpxTransport(http), UpstreamTokens("at"))).subject == "u3"


async def test_github_resolver_asks_github() -> None:
    async with client(Recorder({"/user": json_response(200, GITHUB_USER)})) as http:
        assert (await GitHubResolver().resolve(HttpxTransport(http), UpstreamTokens("gho"))).subject == "1"


def test_token_response_without_access_token_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="no access_token"):
        UpstreamTokens.from_response({"token_type": "bearer"})


def test_token_response_gives_access_and_id_token() -> None:
    tokens = UpstreamTokens.from_response({"access_token": "at", "id_token": "it"}, nonce="n")
    assert tokens == UpstreamTokens("at", "it", "n")


# -- ID tokens through a key lookup (the verifier's rotating JWKS cache) ----------------------------


def idp_with_jwks(jwks: dict) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return json_response(
                200,
                {
                    "issuer": IDP,
                    "authorization_endpoint": IDP + "authorize",
                    "token_endpoint": IDP + "token",
                    "jwks_uri": IDP + "jwks",
                },
            )
        if request.url.path == "/jwks":
            return json_response(200, jwks)
        return httpx.Response(404)

    return handler


async def verifier_key_lookup(jwks: dict, http: httpx.AsyncClient) -> Any:
    from mcp_oauth_shim.config import Upstream
    from mcp_oauth_shim.upstream import UpstreamClient
    from mcp_oauth_shim.verify import BearerVerifier

    config = Upstream.oidc(issuer=IDP, client_id=CLIENT_ID, client_secret="upstream-secret", audience="https://api.example.com/mcp")
    verifier = BearerVerifier(UpstreamClient(config, http=http), audience="https://api.example.com/mcp", resource_metadata_url="https://api.example.com/prm")
    return verifier.keys.key_for


async def test_id_token_verifies_through_the_bearer_verifiers_key_cache() -> None:
    from mcp_oauth_shim.identity import verify_id_token_with

    async with client(idp_with_jwks(IDP_JWKS)) as http:
        key_for = await verifier_key_lookup(IDP_JWKS, http)
        claims = await verify_id_token_with(id_token(), key_for, issuer=IDP, client_id=CLIENT_ID, nonce="n-1", now=NOW)
    assert claims["sub"] == "u1"


async def test_id_token_with_a_kid_the_key_cache_does_not_know_is_refused() -> None:
    from mcp_oauth_shim.identity import verify_id_token_with

    async with client(idp_with_jwks(IDP_JWKS)) as http:
        key_for = await verifier_key_lookup(IDP_JWKS, http)
        with pytest.raises(UpstreamError, match="does not publish") as caught:
            await verify_id_token_with(id_token(kid="idp-9"), key_for, issuer=IDP, client_id=CLIENT_ID, now=NOW)
    assert caught.value.status_code == 502


async def test_id_token_when_the_key_set_cannot_be_fetched_is_unavailability() -> None:
    from mcp_oauth_shim.identity import verify_id_token_with

    async with client(raises(httpx.ConnectError("down"))) as http:
        key_for = await verifier_key_lookup(IDP_JWKS, http)
        with pytest.raises(UpstreamError) as caught:
            await verify_id_token_with(id_token(), key_for, issuer=IDP, client_id=CLIENT_ID, now=NOW)
    assert caught.value.error == "temporarily_unavailable"


async def test_id_token_resolver_takes_a_key_lookup() -> None:
    import time

    now = int(time.time())
    async with client(idp_with_jwks(IDP_JWKS)) as http:
        resolver = IdTokenResolver(keys=await verifier_key_lookup(IDP_JWKS, http), issuer=IDP, client_id=CLIENT_ID)
        identity = await resolver.resolve(HttpxTransport(http), UpstreamTokens("at", id_token(id_claims(iat=now, exp=now + 600)), "n-1"))
    assert identity.subject == "u1"

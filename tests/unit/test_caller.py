"""`Caller`: a frozen, read-only view of a verified token that never shows a token in its repr."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from mcp.server.auth.provider import AccessToken

from mcp_oauth_shim import Caller, UpstreamTokenUnavailable
from mcp_oauth_shim.caller import carries_upstream_token
from tests.bridge.token_issuer import TokenIssuer

BEARER = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
UPSTREAM = "gho_0123456789abcdefghijABCDEFGHIJ012345"


def passthrough_token(**claims: object) -> AccessToken:
    return AccessToken(
        token=BEARER,
        client_id="client-1",
        scopes=["notes:read", "notes:write"],
        expires_at=2_000_000_000,
        subject="user-1",
        claims={"iss": "https://idp.test", "sub": "user-1", **claims},
    )


def issued_token(upstream: str | None = UPSTREAM) -> AccessToken:
    shim = TokenIssuer().shim("http://127.0.0.1:8000", issue_tokens=True)
    assert shim.context.issued is not None
    token = shim.context.issued.tokens.access_token(
        client_id="client-1", subject="user-1", scopes="notes:read", identity_claims={"name": "Ada"}, upstream_access_token=upstream
    )
    return asyncio.run(shim.verifier.authenticate(token))


def test_repr_shows_neither_the_bearer_nor_the_upstream_token() -> None:
    text = repr(Caller.from_access_token(issued_token())) + repr(Caller.from_access_token(passthrough_token()))
    assert BEARER not in text and UPSTREAM not in text and "upt" not in text


def test_caller_is_frozen() -> None:
    caller = Caller.from_access_token(passthrough_token())
    with pytest.raises(dataclasses.FrozenInstanceError):
        caller.subject = "someone-else"  # type: ignore[misc]


def test_claims_are_read_only_so_the_verifiers_cached_token_cannot_be_changed() -> None:
    access = passthrough_token(name="Ada")
    caller = Caller.from_access_token(access)
    with pytest.raises(TypeError):
        caller.claims["name"] = "Mallory"  # type: ignore[index]
    assert access.claims is not None and access.claims["name"] == "Ada"


@pytest.mark.parametrize(
    ("asked", "granted"),
    [((), True), (("notes:read",), True), (("notes:read", "notes:write"), True), (("notes:read", "admin"), False)],
)
def test_has_scopes_needs_every_scope(asked: tuple[str, ...], granted: bool) -> None:
    assert Caller.from_access_token(passthrough_token()).has_scopes(*asked) is granted


@pytest.mark.parametrize(
    ("access", "issued"),
    [(passthrough_token(), False), (issued_token(), True)],
    ids=["passthrough", "issued"],
)
def test_the_mode_is_told_by_the_token_class(access: AccessToken, issued: bool) -> None:
    assert carries_upstream_token(access) is issued
    assert Caller.from_access_token(access).issued_by_shim is issued


def test_passthrough_upstream_token_is_the_bearer_token() -> None:
    assert Caller.from_access_token(passthrough_token()).upstream_access_token() == BEARER


def test_issued_upstream_token_is_decrypted_from_the_token() -> None:
    assert Caller.from_access_token(issued_token()).upstream_access_token() == UPSTREAM


def test_an_issued_token_carrying_none_is_unavailable_with_403() -> None:
    with pytest.raises(UpstreamTokenUnavailable) as raised:
        Caller.from_access_token(issued_token(upstream=None)).upstream_access_token()
    assert (raised.value.status_code, raised.value.error) == (403, "insufficient_scope")


def test_a_caller_built_without_a_token_has_no_upstream_token() -> None:
    with pytest.raises(UpstreamTokenUnavailable):
        Caller(subject="u", client_id="c", scopes=()).upstream_access_token()

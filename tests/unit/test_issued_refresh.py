"""Issued-mode refresh tokens: signed, bound to client and resource, upstream tokens encrypted."""

from __future__ import annotations

import base64
from types import MappingProxyType

import pytest

from mcp_oauth_shim.encryption import UPSTREAM_REFRESH_TOKEN, TokenCipher
from mcp_oauth_shim.issued_refresh import (
    ISSUED_REFRESH,
    MAX_REFRESH_TOKEN_LENGTH,
    IssuedRefresh,
    RefreshTokenError,
    open_refresh_token,
    seal_refresh_token,
)
from mcp_oauth_shim.sealing import REFRESH, Sealer

OLD = "old-secret-of-at-least-32-bytes-oooooooooooo"
NEW = "new-secret-of-at-least-32-bytes-nnnnnnnnnnnn"
RESOURCE = "https://api.example.com/mcp"
UPSTREAM_RT = "ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498"
GRANT = IssuedRefresh(
    client="fp-client-1",
    resource=RESOURCE,
    subject="1",
    scope="read write",
    upstream_refresh_token=UPSTREAM_RT,
    identity_claims=MappingProxyType({"name": "Ada", "preferred_username": "octocat"}),
    auth_time=1_800_000_000,
)


def keys(*secrets: str) -> tuple[Sealer, TokenCipher]:
    chosen = list(secrets) or [NEW]
    return Sealer(chosen), TokenCipher(chosen)


def seal(grant: IssuedRefresh = GRANT, *secrets: str) -> str:
    return seal_refresh_token(*keys(*secrets), grant)


def open_(token: str, *secrets: str, client: str = GRANT.client, resource: str = RESOURCE, max_age: int = 3600) -> IssuedRefresh:
    return open_refresh_token(*keys(*secrets), token, client=client, resource=resource, max_age=max_age)


def test_round_trip_gives_back_everything() -> None:
    assert open_(seal()) == GRANT


def test_upstream_access_token_round_trips_too() -> None:
    grant = IssuedRefresh(client="c", resource=RESOURCE, subject="1", upstream_access_token="gho_long_lived")
    assert open_(seal(grant), client="c").upstream_access_token == "gho_long_lived"


def test_upstream_refresh_token_is_not_readable_in_the_token() -> None:
    token = seal()
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert UPSTREAM_RT not in token and UPSTREAM_RT.encode() not in payload


def test_refresh_token_of_another_client_is_refused() -> None:
    with pytest.raises(RefreshTokenError, match="another client"):
        open_(seal(), client="fp-client-2")


def test_refresh_token_for_another_resource_is_refused() -> None:
    with pytest.raises(RefreshTokenError, match="another resource"):
        open_(seal(), resource="https://other.example.com/mcp")


def test_expired_refresh_token_is_refused() -> None:
    with pytest.raises(RefreshTokenError, match="expired"):
        open_(seal(), max_age=-1)


def test_proxy_mode_refresh_token_is_refused() -> None:
    sealer, _ = keys()
    proxy_token = sealer.seal(REFRESH, {"u": "x", "c": GRANT.client, "sc": ""})
    with pytest.raises(RefreshTokenError, match="invalid signature"):
        open_(proxy_token)


def test_tampered_refresh_token_is_refused() -> None:
    token = seal()
    with pytest.raises(RefreshTokenError):
        open_(token[:10] + ("A" if token[10] != "A" else "B") + token[11:])


def test_upstream_ciphertext_moved_to_another_subject_does_not_open() -> None:
    sealer, cipher = keys()
    ciphertext = cipher.encrypt(UPSTREAM_RT, purpose=UPSTREAM_REFRESH_TOKEN, context=GRANT.context())
    moved = sealer.seal(ISSUED_REFRESH, {"v": 1, "c": GRANT.client, "r": RESOURCE, "s": "someone-else", "sc": "", "u": ciphertext})
    with pytest.raises(RefreshTokenError, match="sign in again"):
        open_(moved)


def test_refresh_token_from_before_a_rotation_still_opens() -> None:
    assert open_(seal(GRANT, OLD), NEW, OLD) == GRANT


def test_refresh_token_after_its_secret_was_dropped_is_refused() -> None:
    with pytest.raises(RefreshTokenError):
        open_(seal(GRANT, OLD), NEW)


@pytest.mark.parametrize(
    "value",
    [
        [1],
        {"v": 2, "c": "fp-client-1", "r": RESOURCE, "s": "1"},
        {"v": 1, "c": "fp-client-1", "r": RESOURCE},
        {"v": 1, "c": "fp-client-1", "r": RESOURCE, "s": 1},
        {"v": 1, "c": "fp-client-1", "r": RESOURCE, "s": "1", "u": 5},
    ],
    ids=["not-object", "other-version", "no-subject", "subject-number", "ciphertext-number"],
)
def test_malformed_content_is_refused(value: object) -> None:
    sealer, _ = keys()
    with pytest.raises(RefreshTokenError):
        open_(sealer.seal(ISSUED_REFRESH, value))


def test_refresh_token_stays_well_below_the_sealed_size_limit() -> None:
    assert len(seal()) < 1024


def test_refresh_token_longer_than_the_limit_is_refused_unread() -> None:
    with pytest.raises(RefreshTokenError, match="malformed"):
        open_("a" * (MAX_REFRESH_TOKEN_LENGTH + 1))

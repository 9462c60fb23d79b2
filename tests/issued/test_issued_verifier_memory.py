"""What the issued-token verifier remembers: a token of its own it accepted, until the token
expires, and never a token it refused (``BearerVerifier.remembered``, the path of every
repeated call)."""

from __future__ import annotations

import pytest

from mcp_oauth_shim import OAuthShim
from mcp_oauth_shim.verify import InvalidToken
from tests.shim.test_machine_grants import machine_shim

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def shim() -> OAuthShim:
    return machine_shim()


def own_token(shim: OAuthShim, *, minted_by: OAuthShim | None = None) -> str:
    issued = (minted_by or shim).context.issued
    assert issued is not None
    return issued.tokens.access_token(client_id="reporter", subject="user-1", scopes="openid")


async def test_an_issued_token_verified_once_is_remembered(shim: OAuthShim) -> None:
    token = own_token(shim)
    assert shim.verifier.remembered(token) is None
    access = await shim.verifier.authenticate(token)
    assert shim.verifier.remembered(token) is access


async def test_a_token_of_another_shim_is_refused_and_not_remembered(shim: OAuthShim) -> None:
    foreign = own_token(shim, minted_by=machine_shim(secret_keys=["o" * 48]))
    with pytest.raises(InvalidToken):
        await shim.verifier.authenticate(foreign)
    assert shim.verifier.remembered(foreign) is None

"""Issued-token mode with strict mode: the shim's own refresh tokens rotate in families, and a
reused one revokes its family (RFC 9700 §4.14.2), as the passthrough refresh tokens do."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_oauth_shim.strict import StrictMode
from tests.shim.kit import Kit, make_kit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def strict_issued_kit() -> Kit:
    return make_kit(issue_tokens=True, strict=StrictMode.in_memory())


def login(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    started = kit.login()
    answer = kit.exchange(started)
    assert answer.status_code == 200, answer.text
    return started, answer.json()


def refresh(kit: Kit, started: dict[str, Any], token: str) -> Any:
    return kit.token(grant_type="refresh_token", refresh_token=token, client_id=started["client_id"])


def test_each_refresh_rotates_the_issued_refresh_token() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    second = refresh(kit, started, first["refresh_token"])
    assert second.status_code == 200, second.text
    third = refresh(kit, started, second.json()["refresh_token"])
    assert third.status_code == 200, third.text


def test_a_reused_issued_refresh_token_revokes_its_family() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    newer = refresh(kit, started, first["refresh_token"]).json()["refresh_token"]
    reused = refresh(kit, started, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # The legitimate holder's newer token belongs to the revoked family too.
    assert refresh(kit, started, newer).json()["error"] == "invalid_grant"


def test_revoking_an_issued_refresh_token_revokes_its_family() -> None:
    kit = strict_issued_kit()
    started, first = login(kit)
    newer = refresh(kit, started, first["refresh_token"]).json()["refresh_token"]
    revoked = kit.client.post(
        "/oauth/revoke", data={"token": newer, "token_type_hint": "refresh_token", "client_id": started["client_id"]}
    )
    assert revoked.status_code == 200
    assert refresh(kit, started, newer).json()["error"] == "invalid_grant"


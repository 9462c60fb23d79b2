"""Spec audit (MCP 2026-07-28 / 2025-11-25 authorization and the RFCs they cite): the
authorization server and protected resource requirements the shim had broken, each pinned by
the behaviour the normative text asks for, over HTTP against the development IdP."""

from __future__ import annotations

import re

import pytest

from .kit import RESOURCE, Kit, pkce_pair


def _page_error(text: str) -> str | None:
    found = re.search(r"\b(invalid_\w+|unsupported_\w+|access_denied)\b", text)
    return found.group(1) if found else None


# -- RFC 8707 §2: "The [resource] value ... MUST NOT include a fragment component." ------------
# "https://mcp.example.com/mcp#" has one (empty, but present: RFC 3986 §3.5).

FRAGMENTED_RESOURCES = [RESOURCE + "#", RESOURCE + "#section"]


@pytest.mark.parametrize("resource", FRAGMENTED_RESOURCES)
def test_a_resource_with_a_fragment_is_invalid_target_at_authorize(kit: Kit, resource: str) -> None:
    client_id = kit.register()["client_id"]
    _, challenge = pkce_pair()
    page = kit.client.get("/oauth/authorize", params=kit.authorize_params(client_id, challenge, resource=resource))
    assert page.status_code == 400
    assert _page_error(page.text) == "invalid_target"


@pytest.mark.parametrize("resource", FRAGMENTED_RESOURCES)
def test_a_resource_with_a_fragment_is_invalid_target_at_the_token_endpoint(kit: Kit, resource: str) -> None:
    login = kit.login()
    answer = kit.token(
        grant_type="authorization_code",
        code=login["code"],
        redirect_uri=login["location"].split("?")[0],
        code_verifier=login["verifier"],
        client_id=login["client_id"],
        resource=resource,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"

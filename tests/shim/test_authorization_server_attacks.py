"""Attacks on the authorization server's endpoints found in the adversarial review, each run
against a live in-process shim: every test names the behaviour that resists the attack."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim.machine_clients import MachineClient

from .kit import CLIENT_REDIRECT, make_kit
from .test_machine_grants import (
    ENTERPRISE,
    JB,
    MACHINE_CLIENTS,
    PUBLIC_URL,
    RESOURCE,
    SECRET,
    TOKEN,
    basic,
    machine_shim,
)

# -- scope escalation through the jwt-bearer grant -------------------------------------------


def test_an_id_jag_without_scope_for_a_client_without_scopes_grants_no_requested_scope() -> None:
    # Neither the enterprise IdP (no scope claim) nor the operator (scopes=()) granted anything:
    # the client's own request must not become the grant.
    unrestricted = MachineClient("agent-any", client_secret=SECRET, grant_types=frozenset({JB}))
    shim = machine_shim(machine_clients=(*MACHINE_CLIENTS, unrestricted))
    assertion = ENTERPRISE.id_jag(subject="alice@enterprise", client_id="agent-any", audience=PUBLIC_URL, resource=RESOURCE)
    with TestClient(shim.app, base_url=PUBLIC_URL) as client:
        response = client.post(TOKEN, data={"grant_type": JB, "assertion": assertion, "scope": "notes:admin"}, headers=basic("agent-any", SECRET))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_scope"
    assert response.headers["cache-control"] == "no-store"


# -- what a self-registered client may put on the consent page -------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Notes\u202eppA liaM", id="right-to-left-override"),
        pytest.param("Notes\u2066Mail\u2069", id="bidi-isolate"),
        pytest.param("Notes\u200fApp", id="right-to-left-mark"),
        pytest.param("Notes\nApproved by your administrator", id="line-break"),
        pytest.param("Notes\u2028App", id="line-separator"),
        pytest.param("Notes\x00App", id="nul"),
        pytest.param("Notes\x85App", id="c1-control"),
    ],
)
def test_a_registered_client_name_with_spoofing_characters_is_invalid_client_metadata(name: str) -> None:
    # The consent page shows the name; client ID metadata documents are refused for the same characters.
    response = make_kit().client.post("/oauth/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": name})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.headers["cache-control"] == "no-store"

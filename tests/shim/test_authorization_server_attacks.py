"""Attacks on the authorization server's endpoints found in the adversarial review, each run
against a live in-process shim: every test names the behaviour that resists the attack."""

from __future__ import annotations

from starlette.testclient import TestClient

from mcp_oauth_shim.machine_clients import MachineClient

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

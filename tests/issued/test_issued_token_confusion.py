"""Token confusion in issued-token mode: every JWT the shim meets presented where another kind is
expected. At the MCP endpoint only the shim's own RFC 9068 access token for this resource opens
it (401 ``invalid_token`` naming the check that refused, RFC 6750 §3.1); at the token endpoint
an access token is no grant and no client assertion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim
from tests.shim.test_machine_grants import (
    CC,
    PUBLIC_URL,
    SECRET,
    TOKEN,
    basic,
    client_assertion,
    id_jag,
    jwt_bearer_form,
    machine_shim,
)


@pytest.fixture(scope="module")
def shim() -> OAuthShim:
    return machine_shim()


@pytest.fixture(scope="module")
def client(shim: OAuthShim) -> Iterator[TestClient]:
    async def mcp(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/", mcp, methods=["POST"])])
    app = Starlette(routes=[Mount("/mcp", shim.protect(inner)), *shim.routes])
    with TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False) as test_client:
        yield test_client


def machine_access_token(client: TestClient) -> str:
    answer = client.post(TOKEN, data={"grant_type": CC}, headers=basic("reporter", SECRET))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def minted_by(shim: OAuthShim) -> str:
    issued = shim.context.issued
    assert issued is not None
    return issued.tokens.access_token(client_id="reporter", subject="reporter", scopes="notes:read")


NOT_ACCESS_TOKENS = [
    pytest.param(lambda client: id_jag(), "not an access token: its typ header", id="id-jag"),
    pytest.param(lambda client: client_assertion(), "not an access token: its typ header", id="client-assertion"),
    pytest.param(
        lambda client: minted_by(machine_shim(public_url="http://127.0.0.1:8001")),
        "issued by another issuer",
        id="same-keys-other-public-url",
    ),
    pytest.param(
        lambda client: minted_by(machine_shim(resource=PUBLIC_URL + "/other")),
        "not issued for this resource",
        id="same-keys-other-resource",
    ),
]


@pytest.mark.parametrize(("make", "says"), NOT_ACCESS_TOKENS)
def test_a_jwt_that_is_not_this_resources_access_token_is_invalid_token(client: TestClient, make: Any, says: str) -> None:
    answer = client.post("/mcp/", headers={"Authorization": "Bearer " + make(client)})
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge
    assert says in answer.json()["error_description"]


def test_the_shims_access_token_opens_the_mcp_endpoint(client: TestClient) -> None:
    """The control for the matrix above: the same endpoint takes a genuine token."""
    answer = client.post("/mcp/", headers={"Authorization": "Bearer " + machine_access_token(client)})
    assert answer.status_code == 200


def test_an_access_token_is_no_identity_assertion_grant(client: TestClient) -> None:
    answer = client.post(TOKEN, data=jwt_bearer_form(machine_access_token(client)))
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert "typ header must be oauth-id-jag+jwt" in answer.json()["error_description"]
    assert answer.headers["cache-control"] == "no-store"


def test_an_id_jag_is_no_client_assertion(client: TestClient) -> None:
    """An ID-JAG names the user in ``sub`` and the IdP in ``iss``: as a client assertion (RFC 7523
    §3: both must be the client_id) it authenticates nobody."""
    form = {"grant_type": CC, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": id_jag()}
    answer = client.post(TOKEN, data=form)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_client")


def test_an_access_token_is_no_refresh_token(client: TestClient) -> None:
    registered = client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:53682/callback"]}).json()["client_id"]
    form = {"grant_type": "refresh_token", "refresh_token": machine_access_token(client), "client_id": registered}
    answer = client.post(TOKEN, data=form)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")

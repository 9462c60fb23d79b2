"""The token endpoint dispatches on grant_type to a registry of grant handlers: what it checks
itself comes first for every grant, and a grant added to the registry is served."""

from __future__ import annotations

from typing import ClassVar

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_oauth_shim.clients import Client
from mcp_oauth_shim.context import ShimContext
from mcp_oauth_shim.endpoints.base import Endpoint
from mcp_oauth_shim.endpoints.token import TokenHandler
from mcp_oauth_shim.grants import GRANTS, AuthorizationCodeGrant, RefreshTokenGrant

from .kit import PUBLIC_URL, RESOURCE, Kit

EXAMPLE_GRANT = "urn:example:params:oauth:grant-type:echo"


class EchoGrant:
    """A grant for the test: answers with the client it was dispatched for."""

    grant_type: ClassVar[str] = EXAMPLE_GRANT

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx

    async def respond(self, form: dict[str, str], client: Client) -> Response:
        return JSONResponse({"client_id": client.client_id, "echo": form.get("echo")})


def _client_with(kit: Kit, grants: dict[str, type]) -> TestClient:
    handler = TokenHandler(kit.shim.context, grants=grants)
    return TestClient(Starlette(routes=[Route("/token", Endpoint(handler), methods=["POST"])]), base_url=PUBLIC_URL)


def test_the_registry_names_the_two_proxied_grants() -> None:
    assert GRANTS == {"authorization_code": AuthorizationCodeGrant, "refresh_token": RefreshTokenGrant}


def test_a_registered_grant_is_dispatched_with_the_authenticated_client(kit: Kit) -> None:
    client_id = kit.register()["client_id"]
    client = _client_with(kit, {**GRANTS, EXAMPLE_GRANT: EchoGrant})
    response = client.post("/token", data={"grant_type": EXAMPLE_GRANT, "client_id": client_id, "echo": "hi"})
    assert response.status_code == 200
    assert response.json() == {"client_id": client_id, "echo": "hi"}


def test_a_grant_left_out_of_the_registry_is_unsupported(kit: Kit) -> None:
    client_id = kit.register()["client_id"]
    client = _client_with(kit, {EXAMPLE_GRANT: EchoGrant})
    response = client.post("/token", data={"grant_type": "refresh_token", "client_id": client_id, "refresh_token": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_id": "not-a-registered-client"}, "invalid_client"),
        ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
    ],
)
def test_every_grant_gets_the_endpoints_own_checks_first(kit: Kit, form: dict[str, str], error: str) -> None:
    client_id = kit.register()["client_id"]
    client = _client_with(kit, {EXAMPLE_GRANT: EchoGrant})
    response = client.post("/token", data={"grant_type": EXAMPLE_GRANT, "client_id": client_id, "resource": RESOURCE, **form})
    assert response.status_code in (400, 401)
    assert response.json()["error"] == error

"""client_credentials with ``mode="upstream"``: the IdP's own machine token, relayed (RFC 6749
§4.4.2, §4.4.3, §5.2). The IdP is a mock transport, to make it answer each way on purpose."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mcp_oauth_shim import OAuthShim, Upstream
from mcp_oauth_shim.machine_clients import MachineClient

PUBLIC_URL = "http://127.0.0.1:8000"
RESOURCE = PUBLIC_URL + "/mcp"
SECRET = "s3cr3t-of-the-reporting-job-0123"
UPSTREAM_SECRET = "upstream-secret-0123456789"
UPSTREAM = Upstream(
    client_id="shim-at-the-idp",
    client_secret=UPSTREAM_SECRET,
    issuer="https://idp.upstream.example",
    authorization_endpoint="https://idp.upstream.example/authorize",
    token_endpoint="https://idp.upstream.example/token",
    jwks_uri="https://idp.upstream.example/jwks",
)
IdPAnswer = Callable[[httpx.Request], httpx.Response]


class RecordingIdP:
    """Answers the shim's token requests with ``answer`` and keeps the forms it was sent."""

    def __init__(self, answer: IdPAnswer) -> None:
        self.answer = answer
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(httpx.QueryParams(request.content.decode())))
        return self.answer(request)


def token_request(answer: IdPAnswer, **form: str) -> tuple[httpx.Response, RecordingIdP]:
    idp = RecordingIdP(answer)
    shim = OAuthShim(
        public_url=PUBLIC_URL,
        upstream=UPSTREAM,
        secret_keys=["k" * 48],
        machine_clients=[MachineClient("reporter", client_secret=SECRET, scopes=("notes:read", "notes:write"), mode="upstream")],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(idp)),
    )
    body = {"grant_type": "client_credentials", "client_id": "reporter", "client_secret": SECRET, "resource": RESOURCE, **form}
    with TestClient(shim.app, base_url=PUBLIC_URL) as client:
        return client.post("/oauth/token", data=body), idp


def idp_json(status: int, body: dict[str, Any]) -> IdPAnswer:
    return lambda request: httpx.Response(status, json=body)


@pytest.fixture
def granted() -> Iterator[tuple[httpx.Response, RecordingIdP]]:
    yield token_request(
        idp_json(200, {"access_token": "idp.machine.token", "token_type": "bearer", "expires_in": 300, "refresh_token": "rt", "id_token": "x.y.z"}),
        scope="notes:read",
    )


def test_the_idp_is_asked_with_the_shims_own_client_for_the_granted_scope(granted: tuple[httpx.Response, RecordingIdP]) -> None:
    _, idp = granted
    [form] = idp.forms
    assert (form["grant_type"], form["scope"], form["client_id"], form["client_secret"]) == (
        "client_credentials",
        "notes:read",
        "shim-at-the-idp",
        UPSTREAM_SECRET,
    )


def test_the_idps_access_token_is_relayed_without_refresh_or_id_token(granted: tuple[httpx.Response, RecordingIdP]) -> None:
    response, _ = granted
    assert response.status_code == 200, response.text
    assert response.json() == {"access_token": "idp.machine.token", "token_type": "Bearer", "expires_in": 300, "scope": "notes:read"}
    assert response.headers["cache-control"] == "no-store"


def test_the_idps_own_scope_is_relayed_when_it_names_one() -> None:
    response, _ = token_request(idp_json(200, {"access_token": "t", "scope": "notes.read"}), scope="notes:read")
    assert response.json()["scope"] == "notes.read"


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (idp_json(400, {"error": "invalid_scope", "error_description": "no such scope"}), 400, "invalid_scope"),
        (idp_json(401, {"error": "invalid_client"}), 502, "server_error"),
        (idp_json(200, {"token_type": "Bearer"}), 502, "server_error"),
        (idp_json(200, {"access_token": ""}), 502, "server_error"),
        (lambda request: httpx.Response(500, content=b"boom"), 502, "server_error"),
    ],
    ids=["grant-error-relayed", "shim-credentials-refused", "no-access-token", "empty-access-token", "idp-fails"],
)
def test_idp_refusals_reach_the_client_as_rfc6749_errors(answer: IdPAnswer, status: int, error: str) -> None:
    response, _ = token_request(answer)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert UPSTREAM_SECRET not in response.text and SECRET not in response.text

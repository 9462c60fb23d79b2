"""X-Request-ID: taken when plausible, made otherwise, returned, and on every log record."""

import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_oauth_shim.log_context import LogContextFilter, request_id_var
from mcp_oauth_shim.request_id import MAX_REQUEST_ID_LENGTH, RequestIdMiddleware

seen_in_handler: list[str | None] = []


async def handler(request: Request) -> Response:
    seen_in_handler.append(request_id_var.get())
    logging.getLogger("mcp_oauth_shim.test").warning("handling")
    return PlainTextResponse("ok", headers={"X-Request-ID": "set-by-the-app"})


def client() -> TestClient:
    return TestClient(RequestIdMiddleware(Starlette(routes=[Route("/", handler)])))


@pytest.mark.parametrize(
    "incoming",
    ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "trace:span.1_2", "x" * MAX_REQUEST_ID_LENGTH],
)
def test_a_plausible_incoming_request_id_is_kept(incoming):
    response = client().get("/", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["", "has space", "quote\"d", "x" * (MAX_REQUEST_ID_LENGTH + 1), "new\nline", "é"],
)
def test_an_implausible_incoming_request_id_is_replaced_never_echoed(incoming):
    response = client().get("/", headers=[(b"x-request-id", incoming.encode())])
    returned = response.headers["x-request-id"]
    assert returned and returned != incoming
    assert len(response.headers.get_list("x-request-id")) == 1


def test_every_request_without_an_id_gets_a_distinct_one():
    c = client()
    ids = {c.get("/").headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50


def test_the_app_sees_the_id_it_answers_with_and_only_one_header_is_sent():
    seen_in_handler.clear()
    response = client().get("/")
    assert seen_in_handler == [response.headers["x-request-id"]]
    assert response.headers.get_list("x-request-id") == [seen_in_handler[0]]


def test_log_records_of_the_request_carry_its_id(caplog):
    caplog.handler.addFilter(LogContextFilter())
    with caplog.at_level(logging.WARNING, logger="mcp_oauth_shim.test"):
        response = client().get("/", headers={"X-Request-ID": "req-42"})
    [record] = [r for r in caplog.records if r.getMessage() == "handling"]
    assert record.request_id == "req-42" == response.headers["x-request-id"]


def test_the_id_does_not_outlive_its_request():
    client().get("/", headers={"X-Request-ID": "req-43"})
    assert request_id_var.get() is None


@pytest.mark.parametrize(("path", "skipped"), [("/mcp", True), ("/mcp/", True), ("/mcp/x", True), ("/mcpx", False), ("/", False)])
def test_skipped_paths_pass_through_without_an_id(path, skipped):
    async def app(scope, receive, send):
        await PlainTextResponse("ok")(scope, receive, send)

    response = TestClient(RequestIdMiddleware(app, skip=["/mcp"])).get(path)
    assert ("x-request-id" not in response.headers) is skipped


@pytest.mark.parametrize(("log_format", "has_id"), [(None, False), ("text", False), ("json", True)])
def test_serve_gives_mcp_requests_an_id_only_when_logs_are_json(log_format, has_id):
    from mcp_oauth_shim.cli import parser, serve_settings
    from mcp_oauth_shim.app_factory import build_app, build_shim

    env = {
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "https://idp.example",
        "MCP_OAUTH_SHIM_CLIENT_ID": "c",
        "MCP_OAUTH_SHIM_CLIENT_SECRET": "s",
        "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
        "MCP_OAUTH_SHIM_MCP_UPSTREAM": "http://127.0.0.1:9/mcp",
    }
    if log_format:
        env["MCP_OAUTH_SHIM_LOG_FORMAT"] = log_format
    settings = serve_settings(parser().parse_args(["serve"]), env)
    client = TestClient(build_app(settings, build_shim(settings)), base_url="http://127.0.0.1:8000")
    refused = client.post("/mcp", json={})  # no token: answered by the guard, no IdP needed
    assert refused.status_code == 401
    assert ("x-request-id" in refused.headers) is has_id
    assert "x-request-id" in client.get("/healthz").headers

"""The request that fails is the one an operator follows by its id: a 500 keeps its
``X-Request-ID`` (under ``serve``), and its access line and traceback carry the id, under a
real uvicorn with the JSON logs ``serve`` configures."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_oauth_shim import health
from mcp_oauth_shim.logs import uvicorn_log_config
from mcp_oauth_shim.request_id import RequestIdMiddleware

from .test_no_secrets_in_logs import serve

INCOMING = "trace-the-failure-42"


async def fails(request: Request) -> Response:
    raise RuntimeError("the handler failed")


@pytest.fixture
def json_logs() -> Iterator[None]:
    """Logging as ``serve --log-format json`` configures it (set up by :func:`get`), undone after."""
    yield
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "WARNING"}})


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    captured = capsys.readouterr()
    return [json.loads(line) for line in (captured.out + captured.err).splitlines() if line.startswith("{")]


def get(app, path: str) -> httpx.Response:
    logging.config.dictConfig(uvicorn_log_config("json"))  # here: its handlers write to the captured stderr
    server, thread, port = serve(app)
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"X-Request-ID": INCOMING}, timeout=30)
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_traceback_and_access_line_of_a_failed_request_carry_its_id(json_logs, capsys):
    app = Starlette(routes=[Route("/fails", fails)], middleware=[Middleware(RequestIdMiddleware)])
    assert get(app, "/fails").status_code == 500
    lines = logged(capsys)
    traceback = [line for line in lines if "the handler failed" in line.get("exception", "")]
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/fails" in line["message"]]
    assert traceback and access, lines
    assert {line["request_id"] for line in traceback + access} == {INCOMING}


def test_a_500_of_serve_answers_with_its_request_id(json_logs, capsys, monkeypatch):
    from mcp_oauth_shim.app_factory import build_app, build_shim
    from mcp_oauth_shim.cli import parser, serve_settings

    async def liveness_fails(self, request: Request) -> Response:
        raise RuntimeError("the handler failed")

    monkeypatch.setattr(health.Liveness, "__call__", liveness_fails)  # fault injection
    env = {
        "MCP_OAUTH_SHIM_UPSTREAM_ISSUER": "http://127.0.0.1:9",
        "MCP_OAUTH_SHIM_CLIENT_ID": "c",
        "MCP_OAUTH_SHIM_CLIENT_SECRET": "s",
        "MCP_OAUTH_SHIM_SECRET_KEYS": "k" * 48,
    }
    settings = serve_settings(parser().parse_args(["serve"]), env)
    answer = get(build_app(settings, build_shim(settings)), "/healthz")
    assert answer.status_code == 500
    assert answer.headers.get("x-request-id") == INCOMING
    lines = logged(capsys)
    assert {line["request_id"] for line in lines if "the handler failed" in line.get("exception", "")} == {INCOMING}


def test_a_failed_request_made_within_another_gives_the_outer_request_its_id_back():
    """A bridge calls its app in process, in the task of the MCP request: a route that fails
    must not leave its own id on the rest of that request's records."""
    import asyncio

    from mcp_oauth_shim.log_context import request_id_var

    inner = RequestIdMiddleware(Starlette(routes=[Route("/fails", fails)]))
    after_the_inner_call: list[str | None] = []

    async def outer_app(scope, receive, send) -> None:
        inner_scope = {**scope, "path": "/fails", "raw_path": b"/fails", "headers": []}
        try:
            await inner(inner_scope, receive, send)
        except RuntimeError:
            pass
        after_the_inner_call.append(request_id_var.get())

    async def call() -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message) -> None:
            pass

        scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
                 "headers": [(b"x-request-id", b"the-outer-request")]}
        await RequestIdMiddleware(outer_app)(scope, receive, send)

    asyncio.run(call())
    assert after_the_inner_call == ["the-outer-request"]

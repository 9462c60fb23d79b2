"""The IdP's JSON documents (discovery, the JWKS) travel on the same transport as the token
POSTs and meet one policy: 200, declared JSON, bounded, an object. Real loopback servers."""

from __future__ import annotations

import json

import pytest

from mcp_oauth_shim import Upstream
from mcp_oauth_shim.upstream import UpstreamClient, UpstreamError
from mcp_oauth_shim.upstream.pool import ConnectionPool

from .test_upstream_pool import Server, answering

pytestmark = pytest.mark.anyio


def answer(status: int, body: bytes, content_type: str | None = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + body


def client_for(url: str) -> UpstreamClient:
    return UpstreamClient(Upstream.oidc(client_id="c", client_secret="s", authorization_endpoint=url, token_endpoint=url))


async def test_a_document_is_fetched_over_the_pool_with_a_get_without_content_length():
    document = {"keys": []}
    server = Server(answering(answer(200, json.dumps(document).encode())))
    async with server as url:
        client = client_for(url)
        assert isinstance(client.transport, ConnectionPool)
        assert await client.get_json(url, what="key set") == document
        await client.aclose()
    request = server.requests[0]
    assert request.startswith(b"GET /token HTTP/1.1\r\n")
    assert b"content-length" not in request.lower()


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/JSON; charset=utf-8", "application/jwk-set+json"]
)
async def test_json_media_types_are_accepted(content_type: str):
    server = Server(answering(answer(200, b'{"a": 1}', content_type)))
    async with server as url:
        client = client_for(url)
        assert await client.get_json(url) == {"a": 1}
        await client.aclose()


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (answer(200, b'{"a": 1}', "text/html"), "is not declared as JSON"),
        (answer(200, b'{"a": 1}', None), "is not declared as JSON"),
        (answer(200, b"<html>", "application/json"), "is not JSON"),
        (answer(200, b"[1, 2]", "application/json"), "is not a JSON object"),
        (answer(200, b"[" * 100_000, "application/json"), "is not JSON"),
        (answer(404, b"{}"), "answered 404"),
    ],
)
async def test_an_unusable_document_is_a_502_naming_the_problem(response: bytes, problem: str):
    server = Server(answering(response))
    async with server as url:
        client = client_for(url)
        with pytest.raises(UpstreamError) as caught:
            await client.get_json(url, what="key set")
        await client.aclose()
    assert caught.value.status_code == 502
    assert problem in caught.value.description


async def test_a_document_larger_than_the_callers_bound_is_refused():
    server = Server(answering(answer(200, b'{"pad": "' + b"x" * 2000 + b'"}')))
    async with server as url:
        client = client_for(url)
        with pytest.raises(UpstreamError, match="is too large"):
            await client.get_json(url, max_bytes=1000)
        await client.aclose()

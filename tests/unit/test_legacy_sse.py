"""The proxy's rewrite of a legacy SSE stream's ``endpoint`` event, against httpx2's SSE parser.

The rewriter reads Server-Sent Events itself (it must pass bytes on chunk by chunk and change
one event in place), so every stream below is also read by ``httpx2.EventSource`` (the parser
the ``mcp`` SDK's clients use): before and after the rewrite the events must be the same but
for the first event's data, whether the stream arrives whole or one byte at a time.
"""

from __future__ import annotations

import dataclasses

import httpx2
import pytest

from mcp_oauth_shim.legacy_sse import MAX_FIRST_EVENT_BYTES, EndpointEventRewriter, EndpointOutsideProxy, map_session_parameters
from mcp_oauth_shim.mcp_proxy import MCPReverseProxy

STREAMS = {
    "sdk-python": b"event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n: ping\r\n\r\nevent: message\r\ndata: {}\r\n\r\n",
    "sdk-typescript": b"event: endpoint\ndata: /messages?sessionId=abc\n\nevent: message\ndata: {}\n\n",
    "cr-line-ends": b"event: endpoint\rdata: /m?session_id=abc\r\rdata: next\r\r",
    "comments-first": b": padding\n\n:more\nevent: endpoint\ndata:/m?session_id=abc\n\ndata: next\n\n",
    "id-and-retry": b"id: 7\nretry: 100\nevent: endpoint\ndata: /m?session_id=abc\n\ndata: next\n\n",
    "first-is-a-message": b"data: {}\n\nevent: endpoint\ndata: /m?session_id=abc\n\n",
    "multi-line-data": b"event: endpoint\ndata: /m?session_id=abc\ndata: more\n\ndata: next\n\n",
    "last-event-field-wins": b"event: message\nevent: endpoint\ndata: /m?session_id=abc\n\n",
    "unfinished": b"event: endpoint\ndata: /m?session_id=abc\n",
}


def _events(stream: bytes) -> list[httpx2.ServerSentEvent]:
    response = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=stream, request=httpx2.Request("GET", "http://sse.test")
    )
    return list(httpx2.EventSource(response))


def _rewritten(stream: bytes, chunk_size: int) -> bytes:
    rewriter = EndpointEventRewriter(lambda data: "rewritten:" + data)
    chunks = [stream[i : i + chunk_size] for i in range(0, len(stream), chunk_size)]
    return b"".join(rewriter.feed(chunk) for chunk in chunks) + rewriter.flush()


@pytest.mark.parametrize("chunk_size", [1, 1 << 20], ids=["byte-by-byte", "whole"])
@pytest.mark.parametrize("stream", STREAMS.values(), ids=STREAMS.keys())
def test_only_the_data_of_a_first_endpoint_event_changes(stream: bytes, chunk_size: int) -> None:
    before, after = _events(stream), _events(_rewritten(stream, chunk_size))
    if before and before[0].event == "endpoint":
        before[0] = dataclasses.replace(before[0], data="rewritten:" + before[0].data)
    assert after == before


def test_a_first_event_beyond_the_bound_passes_unchanged() -> None:
    stream = b":" + b"x" * MAX_FIRST_EVENT_BYTES + b"\nevent: endpoint\ndata: /m?session_id=abc\n\n"
    assert _rewritten(stream, 1024) == stream


@pytest.mark.parametrize(
    ("query", "mapped"),
    [
        ("", ""),
        ("session_id=abc", "session_id=ABC"),
        ("sessionId=abc&x=a%20b+c", "sessionId=ABC&x=a%20b+c"),
        ("x=1&%73ession_id=abc", "x=1&%73ession_id=ABC"),
        ("session_id=a%2Bb", "session_id=A%2BB"),
        ("session_id", "session_id="),
        ("session=abc", "session=abc"),
    ],
)
def test_session_parameters_are_mapped_and_every_other_byte_kept(query: str, mapped: str) -> None:
    assert map_session_parameters(query, str.upper) == mapped


def test_a_session_parameter_that_does_not_map_refuses_the_whole_query() -> None:
    assert map_session_parameters("x=1&session_id=abc", lambda value: None) is None


@pytest.mark.parametrize(
    "endpoint",
    ["http://[::1/messages/?session_id=abc", "//other.example/messages/?session_id=abc", "/elsewhere/?session_id=abc",
     "https://127.0.0.1:9000/messages/?session_id=abc"],
    ids=["unparsable-host", "other-origin", "outside-the-upstream-path", "other-scheme"],
)
def test_an_endpoint_the_proxy_cannot_map_is_endpoint_outside_proxy(endpoint: str) -> None:
    proxy = MCPReverseProxy("http://127.0.0.1:9000/mcp", mount_path="/mcp")
    with pytest.raises(EndpointOutsideProxy):
        proxy.public_endpoint(endpoint, "http://127.0.0.1:9000/mcp/sse", owner="")


def test_keep_alive_comments_before_the_first_event_pass_at_once() -> None:
    """A quiet stream's pings keep intermediaries from closing it: none is held back."""
    rewriter = EndpointEventRewriter(lambda data: "rewritten:" + data)
    pings = [b": ping - 1\r\n\r\n", b": ping - 2\r\n", b"\r\n"]
    assert [rewriter.feed(ping) for ping in pings] == [pings[0], b"", pings[1] + pings[2]]
    assert rewriter.feed(b"event: endpoint\ndata: /m\n\n") == b"event: endpoint\ndata: rewritten:/m\n\n"

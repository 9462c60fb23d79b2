"""Tool calls run in-process through the app: results, and the safety rules of issue 3 item 2."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from tests.bridge.conftest import origin_scope
from tests.bridge.sample_app import PDF, PNG, WAV, Calls

pytestmark = pytest.mark.anyio


def _text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


async def call(bridge: MCPBridge, name: str, arguments: dict[str, Any], **headers: str) -> dict[str, Any]:
    return await bridge.call(name, arguments, origin_scope({k.replace("_", "-"): v for k, v in headers.items()}))


# -- results -----------------------------------------------------------------------------


async def test_object_response_gives_text_and_structured_content(bridge: MCPBridge) -> None:
    result = await call(bridge, "create_item", {"name": "pen", "price": 2.5, "tags": ["a"]})
    assert result["isError"] is False
    assert result["structuredContent"] == {"id": 7, "name": "pen", "price": 2.5}
    assert json.loads(_text(result)) == result["structuredContent"]


async def test_list_response_is_structured_under_result(bridge: MCPBridge) -> None:
    result = await call(bridge, "list_trees", {})
    assert result["structuredContent"] == {"result": [{"label": "root", "children": [{"label": "leaf", "children": []}]}]}


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("sum_numbers", {"body": [1, 2, 3]}, "6"),
        ("echo_name", {"body": "zed"}, '"zed"'),
        ("login_form", {"username": "ann", "remember": True}, '{"username":"ann","remember":true}'),
        ("text", {}, "plain words"),
    ],
)
async def test_body_kinds_reach_the_route(bridge: MCPBridge, tool: str, arguments: dict[str, Any], expected: str) -> None:
    result = await call(bridge, tool, arguments)
    assert (result["isError"], _text(result)) == (False, expected)


async def test_recursive_body_round_trips(bridge: MCPBridge) -> None:
    tree = {"label": "a", "children": [{"label": "b", "children": [{"label": "c", "children": []}]}]}
    result = await call(bridge, "echo_tree", tree)
    assert result["structuredContent"] == tree


async def test_clashing_body_is_sent_whole_next_to_the_path_parameter(bridge: MCPBridge) -> None:
    result = await call(bridge, "rename_forest", {"name": "old", "body": {"name": "new", "trees": []}})
    assert json.loads(_text(result)) == {"old": "old", "new": "new"}


async def test_multipart_file_is_uploaded_from_base64(bridge: MCPBridge) -> None:
    blob = base64.b64encode(b"\x00\x01binary").decode()
    result = await call(bridge, "upload", {"blob": blob, "note": "hi"})
    assert json.loads(_text(result)) == {"size": 8, "note": "hi"}


@pytest.mark.parametrize(
    ("tool", "content"),
    [
        ("png", {"type": "image", "data": base64.b64encode(PNG).decode(), "mimeType": "image/png"}),
        ("wav", {"type": "audio", "data": base64.b64encode(WAV).decode(), "mimeType": "audio/wav"}),
    ],
)
async def test_image_and_audio_responses_are_media_content(bridge: MCPBridge, tool: str, content: dict[str, str]) -> None:
    assert (await call(bridge, tool, {}))["content"] == [content]


async def test_other_binary_is_an_embedded_resource(bridge: MCPBridge) -> None:
    (content,) = (await call(bridge, "pdf", {}))["content"]
    assert content["type"] == "resource"
    assert content["resource"] == {
        "uri": "http://127.0.0.1:8000/media/pdf",
        "mimeType": "application/pdf",
        "blob": base64.b64encode(PDF).decode(),
    }


async def test_no_content_response_is_an_empty_success(bridge: MCPBridge, calls: Calls) -> None:
    result = await call(bridge, "delete_item", {"item_id": 4})
    assert result == {"content": [], "isError": False}
    assert calls.seen[-1] == {"route": "delete_item", "item_id": 4}


@pytest.mark.parametrize("status", [400, 404, 409, 503])
async def test_http_errors_are_tool_errors_with_status(bridge: MCPBridge, status: int) -> None:
    result = await call(bridge, "fail", {"code": status})
    assert result["isError"] is True
    assert _text(result).startswith(f"HTTP {status}: ")


async def test_error_body_is_bounded_and_stripped_of_control_characters(bridge: MCPBridge) -> None:
    text = _text(await call(bridge, "fail", {"code": 400}))
    assert "\x1b" not in text and "\r" not in text
    assert text.endswith("... (truncated)")
    assert len(text) < 2100


async def test_unhandled_exception_is_a_500_tool_error(bridge: MCPBridge) -> None:
    result = await call(bridge, "crash", {})
    assert result["isError"] is True
    assert _text(result).startswith("HTTP 500")


async def test_validation_error_of_the_route_is_reported(bridge: MCPBridge) -> None:
    result = await call(bridge, "create_item", {"name": "", "price": -1})
    assert result["isError"] is True
    assert _text(result).startswith("HTTP 422")


async def test_missing_required_argument_is_refused_before_the_call(bridge: MCPBridge, calls: Calls) -> None:
    result = await call(bridge, "create_item", {"price": 3})
    assert result["isError"] is True
    assert "name" in _text(result)
    assert calls.seen == []


async def test_unknown_tool_is_a_tool_error(bridge: MCPBridge) -> None:
    result = await call(bridge, "no_such_tool", {})
    assert (result["isError"], _text(result)) == (True, "Unknown tool: no_such_tool")


async def test_middleware_and_dependencies_run(bridge: MCPBridge, calls: Calls) -> None:
    result = await call(bridge, "get_item", {"item_id": "abc", "x-tenant": "acme", "verbose": True})
    assert result["isError"] is False
    seen = calls.seen[-1]
    assert (seen["tenant"], seen["verbose"]) == ("acme", True)


# -- path arguments cannot reach other routes ---------------------------------------------


@pytest.mark.parametrize("value", ["../items/admin", "x/admin", "..", ".", "", "a/../../admin"])
async def test_path_argument_cannot_add_or_climb_segments(bridge: MCPBridge, calls: Calls, value: str) -> None:
    result = await call(bridge, "get_item", {"item_id": value})
    assert result["isError"] is True
    assert calls.seen == []


async def test_path_argument_equal_to_a_literal_route_is_refused(bridge: MCPBridge, calls: Calls) -> None:
    # GET /items/admin is listed first and filtered out of nothing: it must still not be reachable
    # through get_item's argument.
    result = await call(bridge, "get_item", {"item_id": "admin"})
    assert result["isError"] is True
    assert "different route" in _text(result)
    assert calls.seen == []


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        ("a b", b"/items/a%20b"),
        ("%2e%2e", b"/items/%252e%252e"),
        ("x?y=1#z", b"/items/x%3Fy=1%23z"),
        ("caf\u00e9", b"/items/caf%C3%A9"),
    ],
)
async def test_path_argument_is_percent_encoded(bridge: MCPBridge, calls: Calls, value: str, raw: bytes) -> None:
    result = await call(bridge, "get_item", {"item_id": value})
    assert result["isError"] is False, result
    assert (calls.seen[-1]["item_id"], calls.seen[-1]["raw_path"]) == (value, raw)


async def test_path_convertor_argument_may_hold_slashes_but_not_dot_segments(bridge: MCPBridge, calls: Calls) -> None:
    ok = await call(bridge, "read_file", {"file_path": "docs/a.txt"})
    assert json.loads(_text(ok)) == {"path": "docs/a.txt"}
    bad = await call(bridge, "read_file", {"file_path": "docs/../../items/admin"})
    assert bad["isError"] is True
    assert [c["file_path"] for c in calls.seen] == ["docs/a.txt"]


async def test_filtered_out_operation_cannot_be_called(sample: tuple[FastAPI, Calls]) -> None:
    app, calls = sample
    bridge = MCPBridge(app, exclude_tags=["admin"])
    assert (await call(bridge, "items_admin", {}))["isError"] is True
    assert (await call(bridge, "item_admin", {"item_id": "1"}))["isError"] is True
    assert calls.seen == []


async def test_filtered_out_operation_cannot_be_reached_through_arguments(sample: tuple[FastAPI, Calls]) -> None:
    app, calls = sample
    bridge = MCPBridge(app, include_operations=["get_item"])
    for value in ("admin", "1/admin"):
        assert (await call(bridge, "get_item", {"item_id": value}))["isError"] is True
    assert calls.seen == []


# -- headers -----------------------------------------------------------------------------


async def test_authorization_of_the_mcp_request_is_forwarded(bridge: MCPBridge) -> None:
    result = await call(bridge, "whoami", {}, authorization="Bearer abc")
    assert json.loads(_text(result))["authorization"] == "Bearer abc"


@pytest.mark.parametrize("header", ["cookie", "x-forwarded-for", "forwarded", "x-api-key", "mcp-session-id"])
async def test_headers_outside_the_allow_list_are_not_forwarded(bridge: MCPBridge, calls: Calls, header: str) -> None:
    await call(bridge, "whoami", {}, **{header: "leak"})
    assert header not in calls.seen[-1]["headers"]


async def test_allow_list_is_configurable(sample: tuple[FastAPI, Calls]) -> None:
    app, calls = sample
    bridge = MCPBridge(app, forward_headers=["x-api-key"])
    await call(bridge, "whoami", {}, authorization="Bearer abc", x_api_key="k")
    headers = calls.seen[-1]["headers"]
    assert (headers.get("x-api-key"), headers.get("authorization")) == ("k", None)


@pytest.mark.parametrize("name", ["authorization", "cookie", "host", "x-forwarded-for", "session"])
async def test_arguments_cannot_set_credential_or_routing_headers(bridge: MCPBridge, calls: Calls, name: str) -> None:
    result = await call(bridge, "get_item", {"item_id": "1", name: "evil"})
    assert result["isError"] is True
    assert calls.seen == []


async def test_declared_header_argument_is_sent(bridge: MCPBridge, calls: Calls) -> None:
    await call(bridge, "get_item", {"item_id": "1", "x-request-id": "r-1"})
    assert calls.seen[-1]["x_request_id"] == "r-1"


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\x00"])
async def test_header_argument_cannot_smuggle_lines(bridge: MCPBridge, calls: Calls, value: str) -> None:
    result = await call(bridge, "get_item", {"item_id": "1", "x-request-id": value})
    assert result["isError"] is True
    assert calls.seen == []


async def test_host_header_is_the_mcp_requests_own(bridge: MCPBridge, calls: Calls) -> None:
    await bridge.call("get_item", {"item_id": "1"}, origin_scope(host="api.example.com"))
    assert calls.seen[-1]["headers"]["host"] == "api.example.com"


# -- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "location"),
    [("redirect_away", "https://evil.example.com/steal"), ("redirect_inside", "/items/admin")],
)
async def test_redirects_are_reported_not_followed(bridge: MCPBridge, calls: Calls, tool: str, location: str) -> None:
    result = await call(bridge, tool, {}, authorization="Bearer secret-token")
    assert result["isError"] is True
    assert location in _text(result) and "not followed" in _text(result)
    assert "secret-token" not in json.dumps(result)
    assert calls.seen == []


# -- over an http_client (FastAPI-MCP's option for an API served elsewhere) -----------------


@pytest.fixture
def over_http(sample: tuple[FastAPI, Calls]) -> MCPBridge:
    import httpx

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sample[0]), base_url="http://api.internal")
    return MCPBridge(sample[0], http_client=client)


async def test_http_client_calls_keep_the_encoded_path(over_http: MCPBridge, calls: Calls) -> None:
    result = await call(over_http, "get_item", {"item_id": "a b?c"}, authorization="Bearer t")
    assert result["structuredContent"] == {"id": 5, "name": "a b?c", "price": 1.0}
    assert calls.seen[-1]["raw_path"] == b"/items/a%20b%3Fc"
    assert calls.seen[-1]["authorization"] == "Bearer t"


async def test_http_client_calls_do_not_follow_redirects(over_http: MCPBridge, calls: Calls) -> None:
    result = await call(over_http, "redirect_inside", {})
    assert result["isError"] is True and "not followed" in _text(result)
    assert calls.seen == []


async def test_http_client_calls_keep_the_traversal_rules(over_http: MCPBridge, calls: Calls) -> None:
    assert (await call(over_http, "get_item", {"item_id": "admin"}))["isError"] is True
    assert (await call(over_http, "get_item", {"item_id": "../x"}))["isError"] is True
    assert calls.seen == []


async def test_path_value_that_looks_like_a_placeholder_stays_a_value() -> None:
    app = FastAPI()
    seen: list[tuple[str, str]] = []

    @app.get("/pairs/{left}/{right}", operation_id="pair")
    def pair(left: str, right: str) -> None:
        seen.append((left, right))

    bridge = MCPBridge(app)
    result = await bridge.call("pair", {"left": "{right}", "right": "b"}, origin_scope())
    assert result["isError"] is False
    assert seen == [("{right}", "b")]

"""Routes answering unusual JSON: the fast path and the SDK path give the same tool result.

A route's 2xx JSON becomes `structuredContent` only when it is strict RFC 8259 JSON text
(UTF-8 without a BOM, no NaN/Infinity, no lone surrogate escapes, nested as deep as the
parser goes); anything else is text content only, on both paths. Each case is answered by
the bridge with the fast path on and off (the SDK's own handler), through the real endpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from starlette.testclient import TestClient

from mcp_bridge import MCPBridge

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _app(body: bytes, response_model: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/raw", operation_id="raw", response_model=response_model)
    def raw() -> Response:
        return Response(body, media_type="application/json")

    return app


def _answers(body: bytes, response_model: Any) -> list[tuple[int, Any]]:
    """The HTTP status and JSON-RPC answer of `tools/call raw`, fast path first, then the SDK's."""
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "raw", "arguments": {}}}
    answers = []
    for fast_path in (True, False):
        app = _app(body, response_model)
        MCPBridge(app, fast_path=fast_path).mount_http("/mcp", stateless=True, json_response=True)
        with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
            response = client.post("/mcp", json=call, headers=ACCEPT)
        answers.append((response.status_code, response.json()))
    return answers


DEEP = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("body", "response_model"),
    [
        pytest.param(DEEP, dict[str, Any], id="nested-deeper-than-the-parser"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, list[Any], id="nested-list-wrapped"),
    ],
)
def test_json_nested_too_deeply_for_the_parser_is_text_on_both_paths(
    body: bytes, response_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mcp_bridge"):
        fast, sdk = _answers(body, response_model)
    assert fast == sdk
    result = fast[1]["result"]
    assert result["isError"] is False
    assert "structuredContent" not in result
    assert result["content"][0]["text"] == body.decode()
    assert not [record for record in caplog.records if record.exc_info], "no traceback for a route's answer"


@pytest.mark.parametrize(
    ("body", "response_model"),
    [
        pytest.param(b'{"a": NaN}', dict[str, float], id="nan"),
        pytest.param(b'{"a": -Infinity}', dict[str, float], id="infinity"),
        pytest.param(b"[NaN]", list[float], id="nan-wrapped"),
        pytest.param(b'\xef\xbb\xbf{"a": 1}', dict[str, int], id="utf8-bom"),
        pytest.param('{"a": 1}'.encode("utf-16"), dict[str, int], id="utf16"),
    ],
)
def test_json_that_is_not_strict_rfc8259_gets_no_structured_content_on_either_path(
    body: bytes, response_model: Any
) -> None:
    fast, sdk = _answers(body, response_model)
    assert fast == sdk
    assert fast[0] == 200
    assert "structuredContent" not in fast[1]["result"]


@pytest.mark.parametrize(
    ("body", "response_model"),
    [
        pytest.param(b'{"a": "\\ud800"}', dict[str, str], id="lone-high-surrogate"),
        pytest.param(b'{"a": "x\\uDC00y"}', dict[str, str], id="lone-low-surrogate"),
        pytest.param(b'{"\\ud83d": 1}', dict[str, int], id="in-a-key"),
        pytest.param(b'["\\ude00\\ud83d"]', list[str], id="pair-in-the-wrong-order-wrapped"),
    ],
)
def test_json_with_a_lone_surrogate_escape_is_text_only_and_never_a_500(body: bytes, response_model: Any) -> None:
    # Valid JSON grammar, but no Unicode text: UTF-8 (and the SDK's serializer) cannot carry it.
    fast, sdk = _answers(body, response_model)
    assert fast == sdk
    assert fast[0] == 200
    assert fast[1]["result"] == {"content": [{"type": "text", "text": body.decode()}], "isError": False}


@pytest.mark.parametrize(
    ("body", "structured"),
    [
        pytest.param(b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}, id="surrogate-pair"),
        pytest.param(b'{"a": "\\\\ud800"}', {"a": "\\ud800"}, id="escaped-backslash"),
    ],
)
def test_json_with_well_formed_unicode_escapes_stays_structured(body: bytes, structured: Any) -> None:
    fast, sdk = _answers(body, dict[str, str])
    assert fast == sdk
    assert fast[1]["result"]["structuredContent"] == structured

"""Form and file arguments reach the route as the route declares them.

FastAPI reads a `list[...]` form field from repeated fields of one name (RFC 7578 §4.3 for
multipart, the WHATWG urlencoded form), and a file from a multipart part with a filename.
The tool's arguments say the same (an array; a base64 string per file), so a model that
fills them as the schema asks must get the route's real answer, not a 422 or a wrong value.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, File, Form, UploadFile

from mcp_bridge import MCPBridge
from tests.bridge.conftest import origin_scope


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/tags/urlencoded", operation_id="tags_urlencoded")
    def tags_urlencoded(tags: Annotated[list[str], Form()], sizes: Annotated[list[int], Form()]) -> dict[str, Any]:
        return {"tags": tags, "sizes": sizes}

    @app.post("/tags/multipart", operation_id="tags_multipart")
    async def tags_multipart(tags: Annotated[list[str], Form()], doc: Annotated[bytes, File()]) -> dict[str, Any]:
        return {"tags": tags, "doc": doc.decode()}

    @app.post("/files/optional", operation_id="optional_file")
    async def optional_file(doc: UploadFile | None = File(None)) -> dict[str, Any]:
        return {"doc": (await doc.read()).decode() if doc is not None else None}

    @app.post("/files/many", operation_id="many_files")
    async def many_files(docs: list[UploadFile] = File()) -> dict[str, Any]:
        return {"docs": [(await doc.read()).decode() for doc in docs]}

    return app


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments", "answer"),
    [
        (
            "tags_urlencoded",
            {"tags": ["a", "b&c=d", "é"], "sizes": [1, 2]},
            {"tags": ["a", "b&c=d", "é"], "sizes": [1, 2]},
        ),
        ("tags_multipart", {"tags": ["x", 'y"z'], "doc": "aGk="}, {"tags": ["x", 'y"z'], "doc": "hi"}),
    ],
)
async def test_a_list_form_field_is_sent_as_repeated_fields(tool: str, arguments: dict[str, Any], answer: Any) -> None:
    result = await MCPBridge(_app()).call(tool, arguments, origin_scope())
    assert result["isError"] is False, result
    assert result["structuredContent"] == answer


_BASE64 = {"type": "string", "contentEncoding": "base64", "description": "file content, base64-encoded"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments", "answer"),
    [
        ("optional_file", {"doc": "aGk="}, {"doc": "hi"}),
        ("optional_file", {}, {"doc": None}),
        ("optional_file", {"doc": None}, {"doc": None}),
        ("many_files", {"docs": ["aGk=", "eW8="]}, {"docs": ["hi", "yo"]}),
    ],
)
async def test_an_optional_file_or_a_file_list_is_sent_as_file_parts(
    tool: str, arguments: dict[str, Any], answer: Any
) -> None:
    result = await MCPBridge(_app()).call(tool, arguments, origin_scope())
    assert result["isError"] is False, result
    assert result["structuredContent"] == answer


@pytest.mark.parametrize(
    ("tool", "argument", "schema"),
    [
        ("optional_file", "doc", {"anyOf": [_BASE64, {"type": "null"}]}),
        ("many_files", "docs", {"type": "array", "items": _BASE64}),
    ],
)
def test_an_optional_file_or_a_file_list_is_described_as_base64(tool: str, argument: str, schema: Any) -> None:
    tool_json = next(spec.tool_json for spec in MCPBridge(_app()).specs if spec.name == tool)
    described = tool_json["inputSchema"]["properties"][argument]
    assert {key: described[key] for key in schema} == schema


@pytest.mark.anyio
async def test_a_file_list_item_that_is_not_base64_is_refused_naming_the_argument() -> None:
    result = await MCPBridge(_app()).call("many_files", {"docs": ["aGk=", "not base64!"]}, origin_scope())
    assert result["isError"] is True
    assert result["content"][0]["text"] == "Invalid arguments for tool many_files: argument 'docs' must be base64"

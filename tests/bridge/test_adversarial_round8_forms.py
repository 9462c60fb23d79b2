"""Form and file arguments reach the route as the route declares them.

FastAPI reads a `list[...]` form field from repeated fields of one name (RFC 7578 §4.3 for
multipart, the WHATWG urlencoded form), and a file from a multipart part with a filename.
The tool's arguments say the same (an array; a base64 string per file), so a model that
fills them as the schema asks must get the route's real answer, not a 422 or a wrong value.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, File, Form

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

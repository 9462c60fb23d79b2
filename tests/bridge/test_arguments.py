"""Tool arguments are checked against the tool's `inputSchema` before any request is built.

A mismatch is a tool error that names the argument, and the route does not run. The compiled
checks (`mcp_bridge/arguments.py`) replace a `jsonschema` validation per call; for the
keywords they check they must agree with `jsonschema` value for value.
"""

from __future__ import annotations

import datetime
import uuid
from enum import Enum
from typing import Annotated, Any

import jsonschema
import pytest
from fastapi import Body, FastAPI, Query

from mcp_bridge import MCPBridge
from mcp_bridge.arguments import Mismatch, compile_check
from tests.bridge.conftest import origin_scope


class Color(str, Enum):
    red = "red"
    green = "green"


def typed_app() -> tuple[FastAPI, list[dict[str, Any]]]:
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.get("/things/{thing_id}", operation_id="get_thing")
    def get_thing(
        thing_id: int,
        q: str,
        flag: bool = False,
        color: Color = Color.red,
        day: datetime.date | None = None,
        ids: Annotated[list[int], Query()] = [],  # noqa: B006 - FastAPI copies defaults
        uid: uuid.UUID | None = None,
        ratio: float | None = None,
    ) -> dict[str, Any]:
        seen.append({"thing_id": thing_id, "q": q, "flag": flag, "color": color.value, "day": day, "ids": ids})
        return {"ok": True}

    @app.post("/notes", operation_id="add_note")
    def add_note(text: Annotated[str, Body()], pinned: Annotated[bool, Body()] = False) -> dict[str, Any]:
        seen.append({"text": text, "pinned": pinned})
        return {"ok": True}

    return app, seen


def _text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


# id: (tool, arguments, what the error says)
REFUSED: dict[str, tuple[str, dict[str, Any], str]] = {
    "string-for-integer": (
        "get_thing",
        {"thing_id": "x", "q": "a"},
        "argument 'thing_id': expected an integer, got a string 'x'",
    ),
    "boolean-for-integer": (
        "get_thing",
        {"thing_id": True, "q": "a"},
        "argument 'thing_id': expected an integer, got a boolean",
    ),
    "fraction-for-integer": (
        "get_thing",
        {"thing_id": 1.5, "q": "a"},
        "argument 'thing_id': expected an integer, got a number 1.5",
    ),
    "integer-for-string": (
        "get_thing",
        {"thing_id": 1, "q": 5},
        "argument 'q': expected a string, got an integer 5",
    ),
    "array-for-string": (
        "get_thing",
        {"thing_id": 1, "q": ["a"]},
        "argument 'q': expected a string, got an array",
    ),
    "string-for-boolean": (
        "get_thing",
        {"thing_id": 1, "q": "a", "flag": "yes"},
        "argument 'flag': expected a boolean, got a string 'yes'",
    ),
    "integer-for-boolean": (
        "get_thing",
        {"thing_id": 1, "q": "a", "flag": 1},
        "argument 'flag': expected a boolean, got an integer 1",
    ),
    "outside-enum": (
        "get_thing",
        {"thing_id": 1, "q": "a", "color": "blue"},
        "argument 'color': expected one of 'red', 'green', got a string 'blue'",
    ),
    "bad-date": (
        "get_thing",
        {"thing_id": 1, "q": "a", "day": "2024-13-01"},
        "argument 'day': expected a date (YYYY-MM-DD) or null, got a string '2024-13-01'",
    ),
    "bad-uuid": (
        "get_thing",
        {"thing_id": 1, "q": "a", "uid": "not-a-uuid"},
        "argument 'uid': expected a UUID (8-4-4-4-12 hex digits) or null",
    ),
    "bad-array-item": (
        "get_thing",
        {"thing_id": 1, "q": "a", "ids": [1, "2"]},
        "argument 'ids': expected an integer at item 1, got an array",
    ),
    "string-for-number": (
        "get_thing",
        {"thing_id": 1, "q": "a", "ratio": "0.5"},
        "argument 'ratio': expected a number or null, got a string '0.5'",
    ),
    "missing-path": (
        "get_thing",
        {"q": "a"},
        "missing required argument(s): thing_id",
    ),
    "missing-all": (
        "get_thing",
        {},
        "missing required argument(s): thing_id, q",
    ),
    "null-required": (
        "get_thing",
        {"thing_id": None, "q": "a"},
        "missing required argument(s): thing_id",
    ),
    "unexpected": (
        "get_thing",
        {"thing_id": 1, "q": "a", "zzz": 1},
        "unexpected argument 'zzz' (this tool takes: color, day, flag, ids, q, ratio, thing_id, uid)",
    ),
    "body-field": (
        "add_note",
        {"text": 3},
        "argument 'text': expected a string, got an integer 3",
    ),
    "missing-body-field": (
        "add_note",
        {"pinned": True},
        "missing required argument(s): text",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "arguments", "message"), list(REFUSED.values()), ids=list(REFUSED))
async def test_argument_that_does_not_fit_the_schema_is_a_tool_error_naming_it(
    tool: str, arguments: dict[str, Any], message: str
) -> None:
    app, seen = typed_app()
    result = await MCPBridge(app).call(tool, arguments, origin_scope())
    assert result["isError"] is True
    assert message in _text(result)
    assert seen == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "received"),
    [
        pytest.param(
            {"thing_id": 3, "q": "a", "flag": True, "color": "green", "day": "2024-02-29", "ids": [1, 2]},
            {"thing_id": 3, "q": "a", "flag": True, "color": "green", "day": datetime.date(2024, 2, 29), "ids": [1, 2]},
            id="every-kind",
        ),
        pytest.param(
            {"thing_id": 3.0, "q": "a", "ids": [2.0]},
            {"thing_id": 3, "q": "a", "flag": False, "color": "red", "day": None, "ids": [2]},
            id="integral-float-is-an-integer",
        ),
        pytest.param(
            {"thing_id": 3, "q": "a", "day": None, "uid": None, "flag": None},
            {"thing_id": 3, "q": "a", "flag": False, "color": "red", "day": None, "ids": []},
            id="null-optional-is-not-given",
        ),
    ],
)
async def test_arguments_that_fit_the_schema_reach_the_route(
    arguments: dict[str, Any], received: dict[str, Any]
) -> None:
    app, seen = typed_app()
    result = await MCPBridge(app).call("get_thing", arguments, origin_scope())
    assert result["isError"] is False, result
    assert seen == [received]


# -- differential: the compiled checks against jsonschema ----------------------------------------

SCHEMAS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "array"},
    {"type": "object"},
    {"type": "null"},
    {"type": ["string", "integer"]},
    {"enum": ["a", "b", 1, True, None]},
    {"const": 1},
    {"type": "string", "enum": ["red", "green"]},
    {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
    {"allOf": [{"type": "number"}, {"enum": [1, 2.5]}]},
    {"type": "array", "items": {"type": "integer"}},
    {"type": "array", "items": {"enum": ["x", "y"]}},
    {"$ref": "#/$defs/Node"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "ipv6"},
    {"format": "uuid"},
    {},
]
VALUES: list[Any] = [
    "a",
    "",
    "red",
    "x",
    0,
    1,
    -1,
    2.5,
    1.0,
    True,
    False,
    None,
    [],
    [1, 2],
    [1, "2"],
    ["x", "y"],
    ["x", "z"],
    {},
    {"k": 1},
    "2024-02-29",
    "2023-02-29",
    "2024-1-01",
    "１２３４-01-01",
    "123e4567-e89b-12d3-a456-426614174000",
    "123e4567e89b12d3a456426614174000",
    "someone@example.com",
    "192.168.0.1",
    "256.1.1.1",
    "::1",
    "fe80::1%eth0",
]
DEFS = {"Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}


def _accepts(schema: dict[str, Any], value: Any) -> bool:
    check = compile_check(schema, DEFS)
    if check is None:
        return True
    try:
        check(value)
    except Mismatch:
        return False
    return True


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s)[:60])
def test_compiled_check_agrees_with_jsonschema(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator({**schema, "$defs": DEFS}, format_checker=jsonschema.FormatChecker())
    disagreements = [value for value in VALUES if _accepts(schema, value) != validator.is_valid(value)]
    assert disagreements == []


@pytest.mark.parametrize(
    ("value", "rfc3339"),
    [
        ("2024-05-01T10:00:00Z", True),
        ("2024-05-01T10:00:00.123+02:00", True),
        ("2024-05-01t10:00:00z", True),
        ("2024-05-01T10:00:00", False),
        ("2024-05-01 10:00:00", False),
    ],
)
def test_date_time_accepts_rfc3339_and_also_a_missing_offset(value: str, rfc3339: bool) -> None:
    schema = {"type": "string", "format": "date-time"}
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert (validator.is_valid(value), _accepts(schema, value)) == (rfc3339, True)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01",
        "2024-05-01T25:00:00Z",
        "2016-12-31T23:59:60Z",
        "2024-02-30T10:00:00Z",
        "now",
        "2024-05-01T10:00:00+24:00",
    ],
)
def test_date_time_refuses_what_is_no_date_time(value: str) -> None:
    schema = {"type": "string", "format": "date-time"}
    assert not jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).is_valid(value)
    assert _accepts(schema, value) is False


def test_object_properties_are_left_to_the_route() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert _accepts(schema, {"n": "not an integer"}) is True
    assert _accepts(schema, "not an object") is False

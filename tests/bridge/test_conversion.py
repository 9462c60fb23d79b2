"""OpenAPI operations -> MCP tools: schemas, names, filters, annotations, refresh."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from mcp_bridge import MCPBridge, ToolNameClashError
from tests.bridge.sample_app import build_app


class Late(BaseModel):
    value: int


@pytest.fixture(scope="module")
def tools() -> dict[str, dict[str, Any]]:
    app, _ = build_app()
    return {spec.name: spec.tool_json for spec in MCPBridge(app).specs}


def _props(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["inputSchema"]["properties"]


def test_every_schema_operation_becomes_a_tool_and_hidden_routes_do_not(tools: dict[str, dict[str, Any]]) -> None:
    app, _ = build_app()
    operation_ids = {
        op["operationId"] for path in app.openapi()["paths"].values() for op in path.values() if "operationId" in op
    }
    assert set(tools) == operation_ids
    assert not any("hidden" in name for name in tools)


@pytest.mark.parametrize(
    ("tool", "argument"),
    [
        ("get_item", "item_id"),  # path
        ("get_item", "verbose"),  # query
        ("get_item", "x-request-id"),  # header
        ("get_item", "x-tenant"),  # header declared by a dependency
        ("create_item", "name"),  # object body, fields spread
        ("create_item", "dry_run"),  # query next to a body
        ("sum_numbers", "body"),  # array body
        ("echo_name", "body"),  # scalar body
        ("echo_tree", "label"),  # recursive model body, fields spread
        ("echo_tree", "children"),
        ("login_form", "username"),  # urlencoded form field
        ("upload", "blob"),  # multipart file
        ("upload", "note"),  # multipart field
        ("read_file", "file_path"),  # {param:path}
    ],
)
def test_every_parameter_kind_is_an_argument(tools: dict[str, dict[str, Any]], tool: str, argument: str) -> None:
    assert argument in _props(tools[tool])


@pytest.mark.parametrize("argument", ["session", "authorization", "cookie"])
def test_cookie_and_credential_parameters_are_not_arguments(tools: dict[str, dict[str, Any]], argument: str) -> None:
    assert argument not in _props(tools["get_item"])


def test_required_follows_the_operation(tools: dict[str, dict[str, Any]]) -> None:
    assert set(tools["get_item"]["inputSchema"]["required"]) == {"item_id"}
    assert set(tools["create_item"]["inputSchema"]["required"]) == {"name", "price"}


def test_constraints_of_fields_survive(tools: dict[str, dict[str, Any]]) -> None:
    name = _props(tools["create_item"])["name"]
    assert (name["minLength"], name["maxLength"]) == (1, 40)
    assert _props(tools["create_item"])["price"]["exclusiveMinimum"] == 0


def test_file_field_is_described_as_base64(tools: dict[str, dict[str, Any]]) -> None:
    assert _props(tools["upload"])["blob"]["contentEncoding"] == "base64"


def test_recursive_model_keeps_a_resolvable_reference(tools: dict[str, dict[str, Any]]) -> None:
    schema = tools["echo_tree"]["inputSchema"]
    text = json.dumps(schema)
    assert "#/components/" not in text
    assert schema["properties"]["children"]["items"]["$ref"].startswith("#/$defs/")
    deep = {"label": "a", "children": [{"label": "b", "children": [{"label": "c"}]}]}
    jsonschema.validate(deep, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"label": "a", "children": [{"children": []}]}, schema)


def test_body_holding_a_recursive_model_is_spread_with_root_definitions(tools: dict[str, dict[str, Any]]) -> None:
    schema = tools["plant_forest"]["inputSchema"]
    assert set(schema["properties"]) == {"name", "trees"}
    jsonschema.validate({"name": "f", "trees": [{"label": "a", "children": [{"label": "b"}]}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "f", "trees": [{"children": []}]}, schema)


def test_body_field_clashing_with_a_parameter_keeps_the_body_whole(tools: dict[str, dict[str, Any]]) -> None:
    schema = tools["rename_forest"]["inputSchema"]
    assert set(schema["properties"]) == {"name", "body"}
    assert set(schema["required"]) == {"name", "body"}
    jsonschema.validate({"name": "old", "body": {"name": "new", "trees": []}}, schema)


def test_recursive_response_model_gives_an_object_output_schema(tools: dict[str, dict[str, Any]]) -> None:
    schema = tools["echo_tree"]["outputSchema"]
    assert schema["type"] == "object"
    jsonschema.validate({"label": "a", "children": [{"label": "b"}]}, schema)


def test_non_object_response_is_wrapped_in_result(tools: dict[str, dict[str, Any]]) -> None:
    schema = tools["list_trees"]["outputSchema"]
    assert schema["required"] == ["result"]
    jsonschema.validate({"result": [{"label": "root", "children": []}]}, schema)


def test_route_without_response_model_has_no_output_schema(tools: dict[str, dict[str, Any]]) -> None:
    assert "outputSchema" not in tools["png"]


def test_no_openapi_component_references_leak(tools: dict[str, dict[str, Any]]) -> None:
    assert "#/components/" not in json.dumps(tools)


@pytest.mark.parametrize(
    ("tool", "hints"),
    [
        ("get_item", {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True}),
        ("delete_item", {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True}),
        ("replace_item", {"readOnlyHint": False, "idempotentHint": True}),
        ("create_item", {"readOnlyHint": False}),
    ],
)
def test_annotations_follow_the_http_method(tools: dict[str, dict[str, Any]], tool: str, hints: dict[str, bool]) -> None:
    annotations = tools[tool]["annotations"]
    assert {k: v for k, v in annotations.items() if k != "title"} == hints


def test_description_lists_responses_when_asked() -> None:
    app, _ = build_app()
    bridge = MCPBridge(app, describe_all_responses=True, describe_full_response_schema=True)
    description = next(s.tool.description for s in bridge.specs if s.name == "create_item")
    assert "201: Successful Response" in description
    assert "422: Validation Error" in description
    assert '"price"' in description


def test_description_is_summary_and_docstring_by_default() -> None:
    app = FastAPI()

    @app.get("/a", summary="Short", operation_id="a")
    def a() -> None:
        """Long explanation."""

    (spec,) = MCPBridge(app).specs
    assert spec.tool.description == "Short\n\nLong explanation."


def _users_router(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix)

    @router.get("/users")
    def list_users() -> list[str]:
        return []

    return router


def _clashing_app() -> FastAPI:
    # Two versions of an API whose handlers share a function name: short names clash.
    app = FastAPI()
    app.include_router(_users_router("/v1"))
    app.include_router(_users_router("/v2"))
    return app


def test_short_names_use_the_function_name() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def get_thing(thing_id: int) -> int:
        return thing_id

    assert [t.name for t in MCPBridge(app, short_names=True).tools] == ["get_thing"]


def test_short_name_clash_is_a_clear_error() -> None:
    with pytest.raises(ToolNameClashError, match="GET /v1/users.*GET /v2/users"):
        MCPBridge(_clashing_app(), short_names=True)


def test_operation_id_clash_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/a", operation_id="same")
    def a() -> None: ...

    @app.get("/b", operation_id="same")
    def b() -> None: ...

    with pytest.warns(UserWarning), pytest.raises(ToolNameClashError, match="'same'"):
        MCPBridge(app)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"include_operations": ["get_item", "png"]}, {"get_item", "png"}),
        ({"include_tags": ["trees"]}, {"echo_tree", "list_trees", "plant_forest", "rename_forest"}),
        ({"include_operations": ["png"], "include_tags": ["math"]}, {"png", "sum_numbers", "echo_name"}),
        ({"include_tags": ["items"], "exclude_operations": ["delete_item"]}, {"get_item", "create_item", "replace_item"}),
    ],
)
def test_include_filters_select(filters: dict[str, list[str]], expected: set[str]) -> None:
    app, _ = build_app()
    assert {t.name for t in MCPBridge(app, **filters).tools} == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filters", "removed"),
    [
        ({"exclude_operations": ["get_item"]}, {"get_item"}),
        ({"exclude_tags": ["admin", "media"]}, {"items_admin", "item_admin", "png", "wav", "pdf", "text"}),
    ],
)
def test_exclude_filters_remove(filters: dict[str, list[str]], removed: set[str]) -> None:
    app, _ = build_app()
    everything = {t.name for t in MCPBridge(app).tools}
    assert {t.name for t in MCPBridge(app, **filters).tools} == everything - removed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filters",
    [
        {"include_operations": ["a"], "exclude_operations": ["b"]},
        {"include_tags": ["a"], "exclude_tags": ["b"]},
    ],
)
def test_contradicting_filters_are_refused(filters: dict[str, list[str]]) -> None:
    app, _ = build_app()
    with pytest.raises(ValueError, match="cannot be combined"):
        MCPBridge(app, **filters)  # type: ignore[arg-type]


def test_security_scopes_become_tool_requirements() -> None:
    app, _ = build_app()
    scopes = {spec.name: spec.scopes for spec in MCPBridge(app).specs}
    assert scopes["read_reports"] == {"reports:read"}
    assert scopes["write_report"] == {"reports:read", "reports:write"}
    assert scopes["get_item"] == frozenset()


def test_refresh_picks_up_routes_added_later() -> None:
    app, _ = build_app()
    bridge = MCPBridge(app)

    @app.post("/late", operation_id="late")
    def late(body: Late) -> Late:
        return body

    assert "late" not in {t.name for t in bridge.tools}
    bridge.refresh()
    assert "late" in {t.name for t in bridge.tools}


def test_mcp_endpoint_is_not_a_tool() -> None:
    app, _ = build_app()
    bridge = MCPBridge(app)
    bridge.mount_http("/mcp")
    bridge.refresh()
    assert all("mcp" not in t.name for t in bridge.tools)


@pytest.mark.parametrize("enabled", [True, False])
def test_building_tools_leaves_the_cycle_collector_as_it_was(enabled: bool) -> None:
    import gc

    app, _ = build_app()
    (gc.enable if enabled else gc.disable)()
    try:
        MCPBridge(app)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_failing_openapi_leaves_the_cycle_collector_on() -> None:
    import gc

    app = FastAPI()

    def broken_openapi() -> dict[str, Any]:
        raise RuntimeError("custom openapi failed")

    app.openapi = broken_openapi  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="custom openapi failed"):
        MCPBridge(app)
    assert gc.isenabled()

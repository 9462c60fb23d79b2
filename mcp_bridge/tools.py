"""FastAPI operations -> MCP tool definitions (MCP 2025-11-25 "Tools", `tools/list`).

Everything a call needs is computed here, once: the tool's JSON Schemas (refs resolved by
`schemas.SchemaResolver`), where each argument goes in the HTTP request, the scopes the route
declares with `Security(..., scopes=[...])`, the compiled argument checks (`arguments.py`)
and the tool's place in the live route table (`routes.OwnRoute`). The hot path (`calls.py`)
then only looks things up.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from starlette.convertors import PathConvertor, StringConvertor

from mcp_bridge.arguments import ArgumentChecks, Check, all_of, compile_check, convertor_check
from mcp_bridge.routes import LiveRoutes, OwnRoute, is_api_route, route_views
from mcp_bridge.schemas import SchemaResolver

Location = Literal["path", "query", "header", "body", "body_field", "form", "file"]

# Headers a tool argument may never set, whatever the operation declares:
# credentials, routing and framing belong to the MCP client's request, not to the model.
FORBIDDEN_ARGUMENT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "forwarded",
        "x-real-ip",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "expect",
        "mcp-session-id",
        "mcp-protocol-version",
    }
)

_PATH_PARAM = re.compile(r"\{([^{}]+)\}")
_JSON_TYPES = ("application/json",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def header_forbidden(name: str) -> bool:
    lowered = name.lower()
    return lowered in FORBIDDEN_ARGUMENT_HEADERS or lowered.startswith(("x-forwarded-", "proxy-"))


class ToolNameClashError(ValueError):
    """Two operations would publish the same tool name."""


@dataclass(frozen=True, slots=True)
class Argument:
    """Where one tool argument goes in the HTTP request."""

    name: str  # the key in `arguments`
    location: Location
    wire_name: str  # the path/query/header/form field name the route declares
    query_key: str = field(init=False, repr=False)  # query parameters: `wire_name=` as urlencode writes it

    def __post_init__(self) -> None:
        object.__setattr__(self, "query_key", quote_plus(self.wire_name) + "=" if self.location == "query" else "")


@dataclass
class ToolSpec:
    """A tool and everything needed to turn a `tools/call` into an HTTP request.

    `tool_json` is the tool's wire form (MCP 2025-11-25 `Tool`), built as plain JSON so that
    building 500 tools costs no model validation and loads no SDK; `tool` gives the SDK's
    `Tool` model on demand.
    """

    name: str
    operation_id: str
    method: str
    path_template: str
    route: Any  # APIRoute, or FastAPI's RouteContext view of one inside an included router
    tool_json: dict[str, Any]
    arguments: dict[str, Argument]
    body_content_type: str | None
    wrap_output: bool
    has_output_schema: bool
    scopes: frozenset[str]
    tags: tuple[str, ...]
    path_params: tuple[str, ...] = ()
    # `path_template` split at its parameters: literal, name, literal, ..., literal.
    path_parts: tuple[str, ...] = ()
    # Arguments that are fields of a JSON object body (their key is the field name).
    body_keys: frozenset[str] = frozenset()
    # Path parameters declared `{name:path}`: the only ones whose value may contain "/".
    slash_params: frozenset[str] = frozenset()
    # The tool's route in the app's live route table; None only for a spec built by hand.
    own_route: OwnRoute | None = None
    _checks: ArgumentChecks | None = field(default=None, repr=False)

    @property
    def checks(self) -> ArgumentChecks:
        """The arguments' checks against `inputSchema` and the path convertors, run before a
        request is built; compiled on the tool's first call, since start-up waits for the
        tool table (`bench/` app, 500 tools: 200 ms with every tool's checks compiled up
        front, 117 ms without, on a loaded shared machine)."""
        checks = self._checks
        if checks is None:
            checks = self._checks = argument_checks(self.route, self.tool_json["inputSchema"], self.arguments)
        return checks

    @functools.cached_property
    def tool(self) -> Any:
        """The `mcp_types.Tool` model of this tool (validated once, on first use)."""
        import mcp_types

        return mcp_types.Tool.model_validate(self.tool_json)


def _file_as_base64(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The argument schema of a form field that holds files (base64 text per file), or None
    for any other field: a file (`UploadFile`, `bytes`: a binary string), a list of files, or
    either of them or null (`UploadFile | None`)."""
    if schema.get("format") == "binary" or "contentMediaType" in schema:
        return {"type": "string", "contentEncoding": "base64", "description": "file content, base64-encoded"}
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict) and (item := _file_as_base64(items)) is not None:
        return {"type": "array", "items": item}
    branches = schema.get("anyOf")
    if isinstance(branches, list) and all(isinstance(branch, dict) for branch in branches):
        files = [branch if branch.get("type") == "null" else _file_as_base64(branch) for branch in branches]
        if None not in files and files != branches:
            return {"anyOf": files}
    return None


def route_scopes(dependant: Dependant) -> frozenset[str]:
    """All OAuth scopes declared anywhere in a route's dependency tree (`Security(scopes=...)`)."""
    return frozenset(dependant.own_oauth_scopes or ()).union(*map(route_scopes, dependant.dependencies))


def _annotations(method: str, title: str | None) -> dict[str, Any]:
    """`ToolAnnotations` hints from HTTP method semantics (RFC 9110 §9.2.1 safe, §9.2.2 idempotent)."""
    hints: dict[str, Any] = {"title": title} if title else {}
    if method in ("GET", "HEAD", "OPTIONS"):
        return {**hints, "readOnlyHint": True, "destructiveHint": False, "idempotentHint": True}
    if method == "DELETE":
        return {**hints, "readOnlyHint": False, "destructiveHint": True, "idempotentHint": True}
    if method == "PUT":
        return {**hints, "readOnlyHint": False, "idempotentHint": True}
    return {**hints, "readOnlyHint": False}


def _success_schema(operation: Mapping[str, Any]) -> Any:
    """The JSON schema of the first 2xx response (lowest status code), or None."""
    for status, response in sorted(operation.get("responses", {}).items()):
        if str(status).startswith("2"):
            return response.get("content", {}).get("application/json", {}).get("schema")
    return None


def _describe(
    operation: Mapping[str, Any],
    resolver: SchemaResolver,
    describe_all_responses: bool,
    describe_full_response_schema: bool,
) -> str:
    parts = [p for p in (operation.get("summary"), operation.get("description")) if p]
    if describe_all_responses or describe_full_response_schema:
        lines = ["### Responses:"]
        for status, response in operation.get("responses", {}).items():
            if not describe_all_responses and not str(status).startswith("2"):
                continue
            lines.append(f"- {status}: {response.get('description', '')}".rstrip())
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if describe_full_response_schema and schema:
                lines.append("  Schema: " + json.dumps(resolver.resolve(schema), sort_keys=True))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _unwrap_root_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"$ref": "#/$defs/X", "$defs": {...}}` -> X's own schema with the same `$defs`.

    A recursive response model resolves to a bare reference; its target is what the
    `outputSchema` should say (an object), and inner references still resolve from the root.
    """
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict) and len(schema) == 2:
        target = defs.get(ref[len("#/$defs/") :])
        if isinstance(target, dict):
            return {**target, "$defs": defs}
    return schema


_TEMPLATE_PARAM = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")


def argument_checks(
    route: Any, input_schema: Mapping[str, Any], arguments: Mapping[str, Argument]
) -> ArgumentChecks:
    """Each argument's check from its schema; a path argument also fits its route's convertor."""
    defs = input_schema.get("$defs", {})
    properties = input_schema.get("properties", {})
    checks: dict[str, Check | None] = {name: compile_check(properties.get(name), defs) for name in arguments}
    convertors = getattr(route, "param_convertors", None) or {}
    declared = dict(_TEMPLATE_PARAM.findall(getattr(route, "path", "") or ""))
    for name, argument in arguments.items():
        convertor = convertors.get(argument.wire_name) if argument.location == "path" else None
        # `{x}` and `{x:path}` take any text; calls.py keeps "/" and dot segments out of the former.
        if convertor is None or isinstance(convertor, (StringConvertor, PathConvertor)):
            continue
        fits = convertor_check(argument.wire_name, declared.get(argument.wire_name, "custom"), convertor.regex)
        schema_check = checks[name]
        checks[name] = fits if schema_check is None else all_of([schema_check, fits])
    return ArgumentChecks(checks, input_schema.get("required", ()))


def _unique_key(wanted: str, taken: Container[str]) -> str:
    while wanted in taken:
        wanted = "request_" + wanted
    return wanted


def build_spec(
    *,
    name: str,
    route: Any,
    method: str,
    operation: Mapping[str, Any],
    resolver: SchemaResolver,
    describe_all_responses: bool,
    describe_full_response_schema: bool,
) -> ToolSpec:
    """Translate one OpenAPI operation of `route` into a `ToolSpec`."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    arguments: dict[str, Argument] = {}
    # Definitions of recursive models used anywhere in the input; "#/$defs/X" points at the root.
    defs: dict[str, Any] = {}

    def hoist(schema: dict[str, Any]) -> dict[str, Any]:
        defs.update(schema.pop("$defs", {}))  # the resolver's answers are fresh dicts: popping is safe
        return schema

    for param in operation.get("parameters", []):
        where = param.get("in")
        wire = param["name"]
        if where not in ("path", "query", "header") or (where == "header" and header_forbidden(wire)):
            continue  # cookies and forbidden headers are never settable from arguments
        schema = hoist(resolver.resolve(param.get("schema", {})))
        if param.get("description") and "description" not in schema:
            schema = {**schema, "description": param["description"]}
        key = _unique_key(wire, properties)
        properties[key] = schema
        arguments[key] = Argument(key, where, wire)
        if param.get("required") or where == "path":
            required.append(key)

    body_content_type: str | None = None
    request_body = operation.get("requestBody")
    if request_body:
        content = request_body.get("content", {})
        # JSON or a form when the route takes one, else the first type it declares.
        body_content_type = next((t for t in (*_JSON_TYPES, *_FORM_TYPES, *content) if t in content), None)
        body_required = bool(request_body.get("required"))
        raw_body = content.get(body_content_type, {}).get("schema", {})
        body_schema = hoist(_unwrap_root_ref(resolver.resolve(raw_body)))
        is_object = body_schema.get("type") == "object" and isinstance(body_schema.get("properties"), dict)
        clashes = is_object and any(p in properties for p in body_schema["properties"])
        if body_content_type in _FORM_TYPES and is_object:
            # Form fields are always spread; a clash with a parameter gets a prefixed key.
            for prop, prop_schema in body_schema["properties"].items():
                file_schema = _file_as_base64(prop_schema)
                key = _unique_key(prop, properties)
                properties[key] = prop_schema if file_schema is None else file_schema
                arguments[key] = Argument(key, "form" if file_schema is None else "file", prop)
                if prop in body_schema.get("required", ()):
                    required.append(key)
        elif is_object and not clashes and body_content_type in _JSON_TYPES:
            # An object body's fields become top-level arguments, which models fill most reliably.
            for prop, prop_schema in body_schema["properties"].items():
                properties[prop] = prop_schema
                arguments[prop] = Argument(prop, "body_field", prop)
            if body_required:
                required.extend(body_schema.get("required", ()))
        else:
            key = _unique_key("body", properties)
            properties[key] = body_schema
            arguments[key] = Argument(key, "body", key)
            if body_required:
                required.append(key)

    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = list(dict.fromkeys(required))
    if defs:
        input_schema["$defs"] = defs

    output_schema: dict[str, Any] | None = None
    wrap_output = False
    response_schema = _success_schema(operation)
    if response_schema:
        resolved = _unwrap_root_ref(resolver.resolve(response_schema))
        if resolved.get("type") == "object":
            output_schema = resolved
        else:
            # MCP requires an object outputSchema; other shapes are wrapped as {"result": ...}.
            wrap_output = True
            out_defs = resolved.pop("$defs", None)
            output_schema = {"type": "object", "properties": {"result": resolved}, "required": ["result"]}
            if out_defs:
                output_schema["$defs"] = out_defs

    title = operation.get("summary")
    members = {
        "name": name,
        "title": title,
        "description": _describe(operation, resolver, describe_all_responses, describe_full_response_schema),
        "inputSchema": input_schema,
        "outputSchema": output_schema,
        "annotations": _annotations(method, title),
    }
    tool_json = {key: value for key, value in members.items() if value}  # no empty title, description or outputSchema
    return ToolSpec(
        name=name,
        operation_id=operation.get("operationId", name),
        method=method,
        path_template=route.path_format,
        path_parts=tuple(_PATH_PARAM.split(route.path_format)),
        body_keys=frozenset(key for key, arg in arguments.items() if arg.location == "body_field"),
        route=route,
        tool_json=tool_json,
        arguments=arguments,
        body_content_type=body_content_type,
        wrap_output=wrap_output,
        has_output_schema=output_schema is not None,
        scopes=route_scopes(route.dependant),
        tags=tuple(operation.get("tags", ())),
        path_params=tuple(key for key, arg in arguments.items() if arg.location == "path"),
        slash_params=frozenset(
            name for name, c in (getattr(route, "param_convertors", None) or {}).items() if isinstance(c, PathConvertor)
        ),
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """FastAPI-MCP's filter semantics: includes select (union of operations and tags), excludes remove."""

    include_operations: frozenset[str] | None = None
    exclude_operations: frozenset[str] | None = None
    include_tags: frozenset[str] | None = None
    exclude_tags: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        include_operations: Sequence[str] | None,
        exclude_operations: Sequence[str] | None,
        include_tags: Sequence[str] | None,
        exclude_tags: Sequence[str] | None,
    ) -> Filters:
        if include_operations is not None and exclude_operations is not None:
            raise ValueError("include_operations and exclude_operations cannot be combined")
        if include_tags is not None and exclude_tags is not None:
            raise ValueError("include_tags and exclude_tags cannot be combined")
        given = (include_operations, exclude_operations, include_tags, exclude_tags)
        return cls(*(None if values is None else frozenset(values) for values in given))

    def keeps(self, names: Iterable[str], tags: Iterable[str]) -> bool:
        names, tags = set(names), set(tags)
        including = self.include_operations is not None or self.include_tags is not None
        if including and names.isdisjoint(self.include_operations or ()) and tags.isdisjoint(self.include_tags or ()):
            return False
        return names.isdisjoint(self.exclude_operations or ()) and tags.isdisjoint(self.exclude_tags or ())


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Reading the OpenAPI document and building tools allocate hundreds of thousands of
    objects (500 routes), and every full collection they trigger walks the application's
    whole heap: 13% of FastAPI's `openapi()` and about half of the tool build. Nothing here
    needs the cycle collector to free memory (schemas are trees, recursion stays a `$ref`);
    whatever cyclic garbage arises meanwhile is collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect_tools(
    app: FastAPI,
    *,
    filters: Filters,
    short_names: bool,
    describe_all_responses: bool,
    describe_full_response_schema: bool,
    excluded_paths: Iterable[str] = (),
) -> list[ToolSpec]:
    """Build the tool list of `app` from its OpenAPI document and its route table."""
    with _cyclic_gc_paused():
        openapi = app.openapi()
        resolver = SchemaResolver(openapi)
        paths: Mapping[str, Any] = openapi.get("paths", {})
        # Read on the first call, not now: the MCP endpoint and the shim's routes are added next.
        live_routes = LiveRoutes(app)
        excluded = set(excluded_paths)
        specs: list[ToolSpec] = []
        owners: dict[str, str] = {}

        for route in route_views(app):
            if not is_api_route(route) or not route.include_in_schema or route.path_format in excluded:
                continue
            path_item = paths.get(route.path_format, {})
            for method in sorted(route.methods or ()):
                operation = path_item.get(method.lower())
                if operation is None:
                    continue
                operation_id = operation.get("operationId") or f"{method.lower()}_{route.name}"
                name = route.name if short_names else operation_id
                name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:128]  # the characters and length MCP allows
                if not filters.keeps((operation_id, name, route.name), operation.get("tags", ())):
                    continue
                where = f"{method} {route.path_format}"
                if name in owners:
                    hint = " (use short_names=False)" if short_names else " (give one an explicit operation_id)"
                    raise ToolNameClashError(f"tool name {name!r} is produced by both {owners[name]} and {where}{hint}")
                owners[name] = where
                spec = build_spec(
                    name=name,
                    route=route,
                    method=method,
                    operation=operation,
                    resolver=resolver,
                    describe_all_responses=describe_all_responses,
                    describe_full_response_schema=describe_full_response_schema,
                )
                spec.own_route = OwnRoute(live_routes, route)
                specs.append(spec)
        return specs

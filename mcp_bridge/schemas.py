"""OpenAPI 3.1 component schemas -> self-contained JSON Schemas for MCP tools.

OpenAPI 3.1 Schema Objects are JSON Schema 2020-12 plus a few OpenAPI-only keywords
(OpenAPI 3.1.0 §4.8.24). A tool's `inputSchema`/`outputSchema` must stand alone, so
`#/components/schemas/X` references are resolved here, once, when tools are built:

* a component that cannot reach itself is inlined (clients and models read it directly);
* a component on a reference cycle (a recursive model) stays a reference, rewritten to
  `#/$defs/X`, and the tool schema carries those definitions under `$defs` -
  inlining a cycle would never terminate.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_COMPONENT_PREFIX = "#/components/schemas/"
# OpenAPI-only keywords with no JSON Schema meaning; `discriminator.mapping` would carry
# dangling `#/components/...` references into the tool schema.
_OPENAPI_ONLY = frozenset({"discriminator", "xml", "externalDocs"})


def _component_name(ref: str) -> str | None:
    return ref[len(_COMPONENT_PREFIX) :] if ref.startswith(_COMPONENT_PREFIX) else None


_NOT_MAPPINGS = (str, int, float, list, type(None))
# Most nodes of a schema are leaves: they are copied as they are, without a call each.
_SCALARS = (str, int, float, type(None))


def _is_mapping(node: Any) -> bool:
    # OpenAPI documents are plain dicts; the abstract (slow) check is only the fallback.
    return isinstance(node, dict) or (not isinstance(node, _NOT_MAPPINGS) and isinstance(node, Mapping))


def _direct_refs(node: Any, found: set[str]) -> None:
    if _is_mapping(node):
        ref = node.get("$ref")
        if isinstance(ref, str) and (name := _component_name(ref)) is not None:
            found.add(name)
        for value in node.values():
            if not isinstance(value, _SCALARS):
                _direct_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            if not isinstance(item, _SCALARS):
                _direct_refs(item, found)


def recursive_components(components: Mapping[str, Any]) -> frozenset[str]:
    """Names of components that lie on a reference cycle (Tarjan's SCC, iterative)."""
    edges: dict[str, set[str]] = {}
    for name, schema in components.items():
        refs: set[str] = set()
        _direct_refs(schema, refs)
        edges[name] = {r for r in refs if r in components}

    index: dict[str, int] = {}  # discovery order
    low: dict[str, int] = {}
    stack: list[str] = []  # visited nodes whose strongly connected component is still open
    on_stack: set[str] = set()
    cyclic: set[str] = set()
    work: list[tuple[str, list[str]]] = []  # the depth-first path: node, successors to visit

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, sorted(edges[node])))

    for root in edges:
        if root not in index:
            enter(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    enter(nxt)
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = [stack.pop()]
                while members[-1] != node:
                    members.append(stack.pop())
                on_stack.difference_update(members)
                if len(members) > 1 or node in edges[node]:
                    cyclic.update(members)
    return frozenset(cyclic)


class SchemaResolver:
    """Resolves references of one OpenAPI document; inlined components are memoized."""

    def __init__(self, openapi: Mapping[str, Any]) -> None:
        self._components: Mapping[str, Any] = openapi.get("components", {}).get("schemas", {})
        self._recursive = recursive_components(self._components)
        self._inlined: dict[str, Any] = {}

    def resolve(self, schema: Any) -> dict[str, Any]:
        """A standalone JSON Schema for `schema`, with `$defs` only if a recursive model is used."""
        needed: set[str] = set()
        body = self._walk(schema, needed)
        if not isinstance(body, dict):
            body = {}
        if needed:
            defs: dict[str, Any] = {}
            pending = sorted(needed)
            while pending:
                name = pending.pop()
                if name in defs:
                    continue
                more: set[str] = set()
                defs[name] = self._walk(self._components[name], more)
                pending.extend(sorted(more - defs.keys()))
            body = {**body, "$defs": {**body.get("$defs", {}), **defs}}
        return body

    def _walk(self, node: Any, needed: set[str]) -> Any:
        if _is_mapping(node):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = _component_name(ref)
                if name is not None and name in self._components:
                    siblings = {k: v for k, v in node.items() if k != "$ref" and k not in _OPENAPI_ONLY}
                    if name in self._recursive:
                        needed.add(name)
                        target: Any = {"$ref": f"#/$defs/{name}"}
                    else:
                        target = self._inline(name, needed)
                    if not siblings:
                        return target
                    # 2020-12 allows keywords beside $ref; keep them without mutating the memo.
                    return {**target, **{k: self._walk(v, needed) for k, v in siblings.items()}}
            return {
                k: v if isinstance(v, _SCALARS) else self._walk(v, needed)
                for k, v in node.items()
                if k not in _OPENAPI_ONLY
            }
        if isinstance(node, list):
            return [item if isinstance(item, _SCALARS) else self._walk(item, needed) for item in node]
        return node

    def _inline(self, name: str, needed: set[str]) -> Any:
        cached = self._inlined.get(name)
        if cached is None:
            inner: set[str] = set()
            cached = (self._walk(self._components[name], inner), frozenset(inner))
            self._inlined[name] = cached
        schema, inner_needed = cached
        needed.update(inner_needed)
        # Shared between tools; callers must not mutate - copy keeps that promise cheap to hold.
        return copy.copy(schema) if isinstance(schema, dict) else schema

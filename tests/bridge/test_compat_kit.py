"""Shared pieces of the FastAPI-MCP compatibility tests (no tests here).

`items_app()` is an app in the style of FastAPI-MCP's documentation and examples: operation
ids on every route, tags `items` and `search`, a path parameter, a body model, a query list.
The app code in the tests is written as FastAPI-MCP's docs show it; only the import differs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from fastapi import FastAPI, HTTPException, Query
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

ALL_ITEM_TOOLS = {"list_items", "get_item", "create_item", "delete_item", "search_items"}


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []


def items_app() -> FastAPI:
    app = FastAPI(title="Items API", description="A small inventory")
    stock: dict[int, Item] = {
        1: Item(id=1, name="Hammer", price=9.5, tags=["tool"]),
        2: Item(id=2, name="Saw", price=19.0, tags=["tool", "cutting"]),
    }

    @app.get("/items/", response_model=list[Item], tags=["items"], operation_id="list_items")
    async def list_items(skip: int = 0, limit: int = 10) -> list[Item]:
        """List the items."""
        return list(stock.values())[skip : skip + limit]

    @app.get("/items/{item_id}", response_model=Item, tags=["items"], operation_id="get_item")
    async def get_item(item_id: int) -> Item:
        """One item by id."""
        if item_id not in stock:
            raise HTTPException(status_code=404, detail="Item not found")
        return stock[item_id]

    @app.post("/items/", response_model=Item, tags=["items"], operation_id="create_item")
    async def create_item(item: Item) -> Item:
        stock[item.id] = item
        return item

    @app.delete("/items/{item_id}", tags=["items"], operation_id="delete_item")
    async def delete_item(item_id: int) -> dict[str, str]:
        stock.pop(item_id, None)
        return {"message": "deleted"}

    @app.get("/items/search/", response_model=list[Item], tags=["search"], operation_id="search_items")
    async def search_items(q: str | None = None, tags: list[str] = Query([])) -> list[Item]:
        found = [i for i in stock.values() if not q or q.lower() in i.name.lower()]
        return [i for i in found if all(t in i.tags for t in tags)]

    return app


@contextlib.asynccontextmanager
async def mcp_session(url: str, token: str | None = None, auth: Any = None) -> AsyncIterator[Client]:
    """The mcp SDK client on Streamable HTTP (optionally with a bearer token or an httpx2 Auth)."""
    if auth is not None:
        http = httpx2.AsyncClient(auth=auth, timeout=60)
    else:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"} if token else None)
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as session:  # type: ignore[arg-type]
        yield session


def text_of(result: CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent), result
    return content.text


def json_of(result: CallToolResult) -> Any:
    assert not result.is_error, result
    return json.loads(text_of(result))

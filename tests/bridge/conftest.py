"""Shared helpers for the bridge tests."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from mcp_bridge import MCPBridge
from tests.bridge.sample_app import Calls, build_app


def origin_scope(headers: dict[str, str] | None = None, host: str = "127.0.0.1:8000") -> dict[str, Any]:
    """The scope of an incoming `POST /mcp`, as the endpoint hands it to a tool call."""
    raw = [(b"host", host.encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


@pytest.fixture
def sample() -> tuple[FastAPI, Calls]:
    return build_app()


@pytest.fixture
def bridge(sample: tuple[FastAPI, Calls]) -> MCPBridge:
    return MCPBridge(sample[0])


@pytest.fixture
def calls(sample: tuple[FastAPI, Calls]) -> Calls:
    return sample[1]

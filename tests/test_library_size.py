"""The library-size measure of bench/library_size.py counts code, not layout or prose."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.library_size import code_lines, scope_size, statements  # noqa: E402

ONE_CALL = "x = f(1, 2)\n"
ONE_CALL_WRAPPED = "x = f(\n    1,\n    2,\n)\n"
WITH_PROSE = '"""Module docstring,\n\nover lines."""\n\n# a comment\n\ndef g():\n    """Docstring."""\n    return 1  # trailing\n'


@pytest.mark.parametrize(
    ("source", "lines", "stmts"),
    [
        (ONE_CALL, 1, 1),
        (ONE_CALL_WRAPPED, 4, 1),
        (WITH_PROSE, 2, 2),
        ("", 0, 0),
    ],
    ids=["one-line call", "wrapped call", "docstrings and comments", "empty"],
)
def test_code_lines_and_statements(source: str, lines: int, stmts: int) -> None:
    assert (code_lines(source), statements(source)) == (lines, stmts)


def test_statements_do_not_depend_on_layout() -> None:
    assert statements(ONE_CALL) == statements(ONE_CALL_WRAPPED)


def test_scope_leaves_out_capability_modules() -> None:
    sizes = {"mcp_oauth_shim/verify.py": (10, 8), "mcp_oauth_shim/rfc9068.py": (100, 90), "mcp_bridge/tools.py": (5, 4)}
    assert scope_size(sizes) == (15, 12)


def test_the_library_is_measured_at_a_revision() -> None:
    from bench.library_size import measure

    sizes = measure("HEAD")
    assert sizes["mcp_oauth_shim/shim.py"][0] > 0 and sizes["mcp_bridge/bridge.py"][1] > 0

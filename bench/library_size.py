"""How much library there is: code lines and statements of ``mcp_oauth_shim`` and ``mcp_bridge``.

``python bench/library_size.py REV [REV ...] [--by-module]``
``python bench/library_size.py --history BASE..TIP``

Two measures per revision, read from git (no checkout needed):

- *code lines*: physical lines holding code, not docstrings, comments or blank lines;
- *statements*: the AST's statements, docstrings excluded: the same for any layout of the same
  code, so wrapping arguments one per line or several to a line changes nothing.

Each is split into the modules of capabilities added after the architecture refactor began
(issued tokens, machine and enterprise clients, strict mode, observability: :data:`CAPABILITY_MODULES`)
and the rest, which serve what the library did before it: the "same behaviour" of a before/after
comparison (the rest also carries the calls into the new capabilities, so it is an upper bound).

``--history`` walks the first-parent commits of a range and prints how much each changed the
before-refactor scope, with its subject: which part of the scope's growth came with a new
capability (its merge wires it into existing modules) and which with a refactor or a cut.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mcp_oauth_shim", "mcp_bridge")

#: Modules that exist only for a capability added after the architecture refactor began.
CAPABILITY_MODULES = frozenset(
    "mcp_oauth_shim/" + name
    for name in (
        # issued tokens
        "caller.py", "encryption.py", "identity.py", "identity_source.py", "issued_refresh.py",
        "issued_verifier.py", "issuing.py", "rfc9068.py", "signing_keys.py", "endpoints/jwks.py",
        "grants/issued_tokens.py",
        # machine and enterprise clients
        "id_jag.py", "machine_access.py", "machine_clients.py", "remote_keys.py", "rfc7523.py",
        "grants/client_credentials.py", "grants/jwt_bearer.py",
        # strict mode
        "strict/__init__.py", "strict/answers.py", "strict/checks.py", "strict/limits.py",
        "strict/memory_store.py", "strict/mode.py", "strict/redis_store.py", "strict/store.py",
        # observability
        "health.py", "log_context.py", "log_format.py", "metrics.py", "request_id.py",
        "telemetry.py", "tracing.py",
    )
)  # fmt: skip


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> int:
    """Physical lines holding a token that is not a comment, blank or part of a docstring."""
    docstrings = _docstring_lines(ast.parse(source))
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def statements(source: str) -> int:
    """AST statements, docstrings not counted."""
    return sum(
        1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.stmt)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))
    )


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def measure(rev: str) -> dict[str, tuple[int, int]]:
    """``path -> (code lines, statements)`` for every library module at ``rev``."""
    paths = [p for p in _git("ls-tree", "-r", "--name-only", rev, "--", *PACKAGES).split() if p.endswith(".py")]
    sizes = {}
    for path in paths:
        source = _git("show", f"{rev}:{path}")
        sizes[path] = (code_lines(source), statements(source))
    return sizes


def scope_size(sizes: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Code lines and statements of the modules outside :data:`CAPABILITY_MODULES`."""
    kept = [s for p, s in sizes.items() if p not in CAPABILITY_MODULES]
    return sum(s[0] for s in kept), sum(s[1] for s in kept)


def history(span: str) -> None:
    """One line per first-parent commit of ``span`` (``BASE..TIP``): the scope after it and
    what it changed."""
    base = span.split("..", 1)[0]
    revs = [base, *_git("log", "--reverse", "--first-parent", "--format=%h", span).split()]
    print(f"{'commit':10s} {'lines':>6s} {'change':>7s} {'stmts':>6s} {'change':>7s}  subject")
    before: tuple[int, int] | None = None
    for rev in revs:
        lines, stmts = scope_size(measure(rev))
        d_lines, d_stmts = (0, 0) if before is None else (lines - before[0], stmts - before[1])
        subject = _git("log", "-1", "--format=%s", rev).strip()
        print(f"{rev[:10]:10s} {lines:6d} {d_lines:+7d} {stmts:6d} {d_stmts:+7d}  {subject[:100]}")
        before = (lines, stmts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revs", nargs="*", help="git revisions")
    parser.add_argument("--by-module", action="store_true", help="one line per module and revision")
    parser.add_argument("--history", metavar="BASE..TIP", help="the scope after each first-parent commit of a range")
    args = parser.parse_args(argv)
    if args.history:
        history(args.history)
        return 0
    if not args.revs:
        parser.error("name at least one revision, or --history BASE..TIP")
    print(f"{'revision':14s} {'part':22s} {'code lines':>10s} {'statements':>10s}")
    for rev in args.revs:
        sizes = measure(rev)
        parts = {
            "before-refactor scope": [s for p, s in sizes.items() if p not in CAPABILITY_MODULES],
            "new capabilities": [s for p, s in sizes.items() if p in CAPABILITY_MODULES],
            "whole library": list(sizes.values()),
        }
        for part, values in parts.items():
            print(f"{rev[:14]:14s} {part:22s} {sum(v[0] for v in values):10d} {sum(v[1] for v in values):10d}")
        if args.by_module:
            for path, (lines, stmts) in sorted(sizes.items()):
                print(f"{rev[:14]:14s}   {path:60s} {lines:6d} {stmts:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rows of the summary table: a figure, its same-run baseline, the ratio, the target, pass/fail."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    figure: str
    baseline: str
    value: float | None
    base_value: float | None
    ratio: float | None  # value / base_value, or a difference for "+%" / "+MiB" targets
    ratio_text: str
    target: str
    passed: bool | None  # None: informational, or the figure could not be measured
    note: str = ""


_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


def ratio_row(
    figure: str, baseline: str, value: float, base: float, target: str, unit: str = "", note: str = ""
) -> Row:
    """``target`` like ``">= 0.7x"`` or ``"<= 2x"`` compares value/base; ``""`` is informational."""
    r = value / base if base else float("inf")
    passed = None
    if target:
        op, num = target.split()
        passed = _OPS[op](r, float(num.rstrip("x")))
    text = f"{r:.2f}x ({_n(value)}{unit} vs {_n(base)}{unit})"
    return Row(figure, baseline, value, base, r, text, target, passed, note)


def growth_row(
    figure: str, baseline: str, value: float, base: float, target: str, unit: str = "", note: str = ""
) -> Row:
    """``target`` like ``"<= +5%"``: relative growth of value over base."""
    g = (value / base - 1.0) * 100 if base else float("inf")
    passed = None
    if target:
        op, num = target.split()
        passed = _OPS[op](g, float(num.rstrip("%")))
    text = f"{g:+.1f}% ({_n(value)}{unit} vs {_n(base)}{unit})"
    return Row(figure, baseline, value, base, g, text, target, passed, note)


def delta_row(figure: str, baseline: str, value: float, base: float, target: str, unit: str, note: str = "") -> Row:
    """``target`` like ``"<= +5"`` (in ``unit``): absolute difference value - base."""
    d = value - base
    passed = None
    if target:
        op, num = target.split()
        passed = _OPS[op](d, float(num))
    text = f"{d:+.1f} {unit} ({_n(value)} vs {_n(base)} {unit})"
    return Row(figure, baseline, value, base, d, text, target + " " + unit if target else "", passed, note)


def skipped_row(figure: str, baseline: str, target: str, why: str) -> Row:
    return Row(figure, baseline, None, None, None, "not measured", target, None, why)


def _n(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def table(rows: list[Row]) -> str:
    heads = ("figure", "baseline", "ratio", "target", "result")
    cells = [
        (
            r.figure,
            r.baseline,
            r.ratio_text,
            r.target or "(info)",
            {True: "PASS", False: "FAIL", None: "-"}[r.passed] + (f"  {r.note}" if r.note else ""),
        )
        for r in rows
    ]
    widths = [min(60, max(len(h), *(len(c[i]) for c in cells))) if cells else len(h) for i, h in enumerate(heads)]
    out = [" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out.extend(" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells)
    return "\n".join(out)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_default))


def _default(o: object) -> object:
    if hasattr(o, "to_json"):
        return o.to_json()  # type: ignore[no-any-return]
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[arg-type]
    return str(o)

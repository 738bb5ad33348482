"""Markdown formatting shared by evaluation reports (report.py) and comparisons (comparison.py): numbers
as table cells (missing or NaN values as a dash), tables, and writing a report with its plots whole."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

from lenrl.eval.plots import number
from lenrl.files import atomic_write

DASH = "–"  # missing or NaN value


def get(d: object, *keys: str) -> object:
    """d[k0][k1]...; None where a level is missing or not a dict (summaries may lack optional parts)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def fmt(v: object, spec: str, scale: float = 1.0) -> str:
    x = number(v)
    if x is None:
        return DASH
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(scale * x, spec)


def pct(v: object) -> str:
    """A fraction as a percentage with one decimal, without the sign: the column header says (%)."""
    return fmt(v, ".1f", 100.0)


def tok(v: object) -> str:
    return fmt(v, ".1f")


def plain(v: object) -> str:
    if v is None:
        return DASH
    return format(v, "g") if isinstance(v, float) else str(v)


def cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would split a table cell


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Markdown table lines: the first `left` columns left-aligned (names), the rest right-aligned (numbers)."""
    lines = ["| " + " | ".join(header) + " |", "|" + ":---|" * left + "---:|" * (len(header) - left)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def keyed(d: object, cast: type = int) -> dict:
    """{"4": v} -> {4: v}; cast=float makes "0.1" and "0.10" one key. Non-numeric keys are dropped."""
    out = {}
    for k, v in d.items() if isinstance(d, dict) else ():
        with contextlib.suppress(ValueError):
            out[cast(k)] = v
    return out


def ks(dicts: Sequence[object], cast: type = int) -> list:
    """Sorted union of the numeric keys of several dicts (pass@k ks, shortest fractions)."""
    return sorted({k for d in dicts for k in keyed(d, cast)})


def write_outputs(root: Path, md_name: str, text: str, pngs: dict[str, bytes | None]) -> Path:
    """Write the plots, remove stale plots of this run's names that were not drawn, then the Markdown."""
    plot_dir = root / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        if png is None:
            (plot_dir / name).unlink(missing_ok=True)  # an old plot would contradict the new report
        else:
            atomic_write(plot_dir / name, png)
    md_path = root / md_name
    atomic_write(md_path, text.encode("utf-8"))
    return md_path

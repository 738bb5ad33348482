"""PNG figures of evaluation results, returned as bytes so that `report.py` can write them atomically.

`benchmark_pngs` / `comparison_pngs` decide which figures a summary yields and name their files; the
`*_png` functions draw one figure from plain numbers. Nothing here touches the filesystem. matplotlib is
imported inside the functions, with the non-interactive Agg backend, so that importing this module (or
`report.py`) stays light and works on headless machines. Figures are 6x4 inches at 100 dpi and are
closed after encoding: a comparison over many benchmarks must not accumulate open figures.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import numpy as np

FIGSIZE = (6.0, 4.0)
DPI = 100


def number(v: object) -> float | None:
    """A float, or None for missing / null / NaN / non-numbers; infinities are kept (tokens per correct)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


def budget_points(summary: dict | None) -> list[dict]:
    """`budget_curve` points that have a numeric budget, by increasing budget; absent -> []."""
    curve = (summary or {}).get("budget_curve") or []
    return sorted(
        (p for p in curve if isinstance(p, dict) and number(p.get("budget")) is not None), key=lambda p: p["budget"]
    )


def file_stems(names: Sequence[str]) -> dict[str, str]:
    """File-name-safe, distinct stems of benchmark names for plot file names (a name may hold '/' or spaces)."""
    out: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "benchmark"
        slug, i = stem, 2
        while slug in out.values():
            slug, i = f"{stem}-{i}", i + 1
        out[name] = slug
    return out


def _series(summary: dict | None) -> tuple[list, list, list]:
    pts = budget_points(summary)
    return (
        [p["budget"] for p in pts],
        [number(p.get("truncation")) for p in pts],
        [number(p.get("forcing")) for p in pts],
    )


def accuracy_and_length(summary: dict | None) -> tuple[float | None, float | None]:
    """(avg@k, mean length) of a summary, each None unless finite."""
    s = summary or {}
    vals = [
        number((s.get("accuracy") or {}).get("avg@k")),
        number(((s.get("length") or {}).get("all") or {}).get("mean")),
    ]
    return tuple(v if v is not None and math.isfinite(v) else None for v in vals)  # type: ignore[return-value]


def benchmark_pngs(summary: dict, slug: str, samples: tuple[np.ndarray, np.ndarray] | None) -> dict[str, bytes | None]:
    """The plots of one model on one benchmark, by file name; None marks a plot with nothing to draw
    (no budgets, no samples), so that the caller can skip it and remove a stale copy."""
    title = f"{summary.get('label') or ''} · {summary['benchmark']}"
    budgets, trunc, force = _series(summary)
    return {
        f"accuracy_vs_budget_{slug}.png": accuracy_vs_budget_png(
            f"{title}: accuracy vs budget", budgets, trunc, force, accuracy_and_length(summary)[0]
        )
        if budgets
        else None,
        f"length_hist_{slug}.png": length_hist_png(f"{title}: response lengths", *samples) if samples else None,
    }


def comparison_pngs(bench: str, slug: str, labels: Sequence[str], summaries: Sequence[dict | None]) -> dict:
    """The comparison plots of one benchmark, by file name (None: nothing to draw). `summaries[i]` is model
    i's summary of `bench` or None; the model index fixes the colour, so colours match across benchmarks."""
    curves = [(label, *_series(s)) for label, s in zip(labels, summaries, strict=True)]
    points = []
    for i, (label, s) in enumerate(zip(labels, summaries, strict=True)):
        acc, length = accuracy_and_length(s)
        if acc is not None and length is not None:
            points.append((i, label, length, acc))
    return {
        f"compare_accuracy_vs_budget_{slug}.png": compare_accuracy_vs_budget_png(f"{bench}: accuracy vs budget", curves)
        if any(c[1] for c in curves)
        else None,
        f"compare_accuracy_vs_length_{slug}.png": compare_accuracy_vs_length_png(
            f"{bench}: accuracy vs mean length", points
        )
        if points
        else None,
    }


def _pyplot():
    """pyplot on the Agg backend; `use` must run before pyplot picks an interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    """Encode `fig` and close it, also when encoding fails."""
    plt = _pyplot()
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


def _pct(values: Sequence[float | None]) -> np.ndarray:
    """Fractions -> percentages, None -> NaN (matplotlib leaves a gap at NaN instead of failing)."""
    return np.array([math.nan if v is None else 100.0 * v for v in values], dtype=np.float64)


def _has_points(y: np.ndarray) -> bool:
    return bool(np.isfinite(y).any())


def accuracy_vs_budget_png(
    title: str,
    budgets: Sequence[int],
    truncation: Sequence[float | None],
    forcing: Sequence[float | None],
    reference: float | None = None,
) -> bytes:
    """Accuracy (%) against the token budget: hard truncation solid, budget forcing dashed.

    `reference` (the unbudgeted avg@k) is drawn as a dotted horizontal line so that the reader sees
    where the curve saturates. A forcing curve that is all None (forcing disabled) is left out.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    x = np.asarray(budgets, dtype=np.float64)
    ax.plot(x, _pct(truncation), marker="o", linestyle="-", label="hard truncation")
    y_force = _pct(forcing)
    if _has_points(y_force):
        ax.plot(x, y_force, marker="s", linestyle="--", label="budget forcing")
    if reference is not None and math.isfinite(reference):
        ax.axhline(100.0 * reference, color="gray", linestyle=":", label="no budget (avg@k)")
    _finish(ax, title, "budget (tokens)", "accuracy (%)")
    return _png(fig)


def length_hist_png(title: str, lengths: np.ndarray, correct: np.ndarray) -> bytes:
    """Histogram of response lengths, correct and incorrect overlaid on the same bins.

    Shared bin edges (computed over all responses) make the two bars directly comparable; numpy widens
    a zero-width range by 0.5 on each side, so equal lengths still give a valid histogram.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    edges = np.histogram_bin_edges(lengths, bins=min(30, max(1, len(np.unique(lengths)))))
    ax.hist(lengths[correct], bins=edges, alpha=0.6, label=f"correct (n={int(correct.sum())})")
    ax.hist(lengths[~correct], bins=edges, alpha=0.6, label=f"incorrect (n={int((~correct).sum())})")
    ax.yaxis.get_major_locator().set_params(integer=True)  # counts: no 1.25-response ticks
    _finish(ax, title, "response length (tokens)", "responses")
    return _png(fig)


def compare_accuracy_vs_budget_png(title: str, curves: Sequence[tuple[str, list[int], list, list]]) -> bytes:
    """Every model's budget curve: (label, budgets, truncation, forcing) per model.

    One colour per model (the position in `curves`, so colours match across benchmarks); truncation solid,
    forcing dashed in the same colour.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for i, (label, budgets, truncation, forcing) in enumerate(curves):
        if not budgets:
            continue
        color = f"C{i % 10}"
        x = np.asarray(budgets, dtype=np.float64)
        ax.plot(x, _pct(truncation), color=color, marker="o", linestyle="-", label=f"{label} (truncation)")
        y_force = _pct(forcing)
        if _has_points(y_force):
            ax.plot(x, y_force, color=color, marker="s", linestyle="--", label=f"{label} (forcing)")
    _finish(ax, title, "budget (tokens)", "accuracy (%)")
    return _png(fig)


def compare_accuracy_vs_length_png(title: str, points: Sequence[tuple[int, str, float, float]]) -> bytes:
    """Scatter of mean length (x) against avg@k (y, %): (model index, label, length, accuracy) per point.

    The model index picks the colour, as in the budget comparison, and each point carries its label.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for i, label, length, acc in points:
        ax.scatter([length], [100.0 * acc], color=f"C{i % 10}", zorder=3)
        ax.annotate(label, (length, 100.0 * acc), textcoords="offset points", xytext=(5, 5), fontsize=8)
    _finish(ax, title, "mean response length (tokens)", "avg@k (%)", legend=False)
    return _png(fig)


def _finish(ax, title: str, xlabel: str, ylabel: str, *, legend: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.figure.tight_layout()

"""Training-curve pictures from `metrics.jsonl`: reward, accuracy, length (mean and p90), truncation, the
budget, entropy and KL over steps, one panel each, one line per run.

Written at the end of every run (`<run>/plots/training.png`) and on demand for one run or several overlaid
(`lenrl plot RUN_DIR [RUN_DIR ...] [--out FILE]`). Reads only the JSONL, so it works on a run that is still
going or one that crashed. matplotlib is imported when drawing (eval/plots.py: Agg backend, figures
closed after encoding).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

from lenrl.errors import LenrlError, exit_code_of
from lenrl.files import atomic_write

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward/mean",)),
    ("accuracy", ("reward/accuracy",)),
    ("length (tokens): mean, p90 dashed", ("len/mean", "len/p90")),
    ("truncated fraction", ("len/truncated_frac",)),
    ("budget (tokens)", ("len/budget_mean",)),
    ("entropy", ("actor/entropy",)),
    ("KL to reference", ("actor/kl_ref",)),
    ("learning rate", ("train/lr",)),
)
"""(panel title, metric keys): the first key solid, a second one dashed in the same colour"""
OUT_NAME = "plots/training.png"


def read_metrics(run: Path) -> list[dict]:
    """The rows of `run/metrics.jsonl`; a partial last line (a run killed mid-write) is skipped."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise LenrlError(f"{run}: no metrics.jsonl (not a lenrl run directory?)")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def curves_png(runs: Sequence[tuple[str, list[dict]]], panels: Sequence[tuple[str, tuple[str, ...]]] = PANELS) -> bytes:
    """One figure: a panel per (title, keys), a line per (label, rows); steps on x. A key a run never logged
    (no KL term, no budget) leaves its panel empty for that run."""
    from lenrl.eval.plots import _png, _pyplot

    plt = _pyplot()
    cols = min(4, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.6 * cols, 2.8 * rows_n), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        for i, (label, rows) in enumerate(runs):
            for key, style in zip(keys, ("-", "--"), strict=False):
                pts = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, color=f"C{i % 10}", label=label if style == "-" else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def write_run_plots(run: Path, label: str | None = None) -> Path:
    """The run's curves into `run`/OUT_NAME; `label` names the run in the legend (default: the directory)."""
    out = run / OUT_NAME
    out.parent.mkdir(exist_ok=True)
    atomic_write(out, curves_png([(label or run.name, read_metrics(run))]))
    return out


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plot_main(argv: list[str]) -> int:
    """`lenrl plot RUN_DIR [RUN_DIR ...] [--out FILE]`: the training curves of one run or several overlaid."""
    p = argparse.ArgumentParser(prog="lenrl plot", description=plot_main.__doc__)
    p.add_argument("runs", nargs="+", help="run directories (each holds metrics.jsonl)")
    p.add_argument("--out", default=None, help=f"PNG to write (default: <run>/{OUT_NAME} for one run)")
    args = p.parse_args(argv)

    def run() -> int:
        dirs = [Path(r) for r in args.runs]
        if args.out is None and len(dirs) > 1:
            raise LenrlError("lenrl plot: several runs need --out FILE")
        out = Path(args.out) if args.out else dirs[0] / OUT_NAME
        png = curves_png([(d.name, read_metrics(d)) for d in dirs])
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, png)
        print(f"lenrl plot: {out}")
        return 0

    return exit_code_of(run)

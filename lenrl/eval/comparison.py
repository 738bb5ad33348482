"""`comparison.md` and its plots over several evaluated models (`lenrl compare`, `lenrl eval` with several
`--model`s). Like report.py it only renders what the runner computed, except the AES column, which needs two
models at once and goes through `metrics.aes`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lenrl.errors import LenrlError
from lenrl.eval import markdown as md
from lenrl.eval import metrics, plots
from lenrl.eval.report import load_results


@dataclass(frozen=True)
class _Model:
    label: str
    out_dir: Path
    by_bench: dict[str, dict]


def write_comparison(out_dirs: Sequence[str | os.PathLike], dest: str | os.PathLike) -> Path:
    """Write `dest/comparison.md` and `dest/plots/compare_*.png` over several models; returns the report path.

    The first directory is the baseline of the AES column (`metrics.aes` on avg@k and mean length); the
    baseline's own AES is therefore 0.00, and every AES of a benchmark is "–" where the baseline lacks it
    or has zero accuracy or length. Benchmarks present in only some models get "–" rows for the others.
    """
    if not out_dirs:
        raise LenrlError("write_comparison needs at least one evaluation output directory")
    models = _load_models(out_dirs)
    benches = sorted({b for m in models for b in m.by_bench})
    slugs = plots.file_stems(benches)
    pngs: dict[str, bytes | None] = {}
    for bench in benches:
        rows = [m.by_bench.get(bench) for m in models]
        pngs.update(plots.comparison_pngs(bench, slugs[bench], [m.label for m in models], rows))
    drawn = {name for name, png in pngs.items() if png is not None}
    return md.write_outputs(Path(dest), "comparison.md", _comparison_markdown(models, benches, slugs, drawn), pngs)


def _load_models(out_dirs: Sequence[str | os.PathLike]) -> list[_Model]:
    """Load every directory; a model's label is its first summary's label (else the directory name),
    made unique with a " (2)" suffix so that two checkpoints with one label stay distinguishable."""
    models: list[_Model] = []
    for d in out_dirs:
        summaries = load_results(d)
        label = next((str(s["label"]) for s in summaries if s.get("label")), Path(d).name)
        unique, i = label, 2
        while unique in {m.label for m in models}:
            unique, i = f"{label} ({i})", i + 1
        models.append(_Model(unique, Path(d), {s["benchmark"]: s for s in summaries}))
    return models


def _comparison_markdown(models: list[_Model], benches: list[str], slugs: dict[str, str], drawn: set[str]) -> str:
    base = models[0].label
    lines = [f"# Comparison of {len(models)} models", "", "## Models", ""]
    lines += _models_table(models)
    lines += [
        "",
        (
            f"AES is measured against the baseline **{md.cell(base)}** (the first model) from avg@k and mean length "
            f"(`lenrl.eval.metrics.aes`, alpha=1, beta=3, gamma=5); the baseline's own AES is 0.00, and "
            f"{md.DASH} marks a benchmark the baseline lacks or a zero baseline accuracy or length. "
            "Accuracies and rates in %, lengths in tokens."
        ),
    ]
    for bench in benches:
        lines += ["", f"## {bench}", ""] + _comparison_table(models, bench)
        for stem, alt in (
            ("compare_accuracy_vs_budget", "accuracy vs budget"),
            ("compare_accuracy_vs_length", "accuracy vs mean length"),
        ):
            if f"{stem}_{slugs[bench]}.png" in drawn:
                lines += ["", f"![{alt}: {bench}](plots/{stem}_{slugs[bench]}.png)"]
    return "\n".join(lines) + "\n"


def _models_table(models: list[_Model]) -> list[str]:
    rows = []
    for i, m in enumerate(models):
        first = next(iter(m.by_bench.values()))
        rows.append(
            [str(i + 1), md.cell(m.label), f"`{md.cell(md.plain(first.get('model')))}`"]
            + [md.plain(md.get(first, "settings", k)) for k in ("n", "temperature", "max_tokens")]
            + [f"`{md.cell(str(m.out_dir))}`"]
        )
    return md.table(["#", "label", "model", "n", "temperature", "max_tokens", "output dir"], rows, left=3)


def _comparison_table(models: list[_Model], bench: str) -> list[str]:
    base = models[0].by_bench.get(bench)
    max_ks = {m.label: max(ks) for m in models if (ks := md.ks([md.get(m.by_bench.get(bench), "accuracy", "pass@k")]))}
    same_k = len(set(max_ks.values())) == 1
    pass_header = f"pass@{next(iter(max_ks.values()))} (%)" if same_k else "pass@max k (%)"
    rows = []
    for m in models:
        s, k = m.by_bench.get(bench), max_ks.get(m.label)
        pass_cell = md.pct(md.keyed(md.get(s, "accuracy", "pass@k")).get(k)) if k is not None else md.DASH
        if k is not None and not same_k:
            pass_cell += f" (k={k})"
        rows.append(
            [
                md.cell(m.label),
                md.pct(md.get(s, "accuracy", "avg@k")),
                pass_cell,
                md.tok(md.get(s, "length", "all", "mean")),
                md.pct(md.get(s, "truncation_rate")),
                md.tok(md.get(s, "tokens_per_correct")),
                _aes_cell(s, base),
            ]
        )
    aes_header = f"AES vs {md.cell(models[0].label)}"
    return md.table(["model", "avg@k (%)", pass_header, "mean len", "trunc. (%)", "tok/✓", aes_header], rows)


def _aes_cell(s: dict | None, base: dict | None) -> str:
    """AES of `s` against `base` with two decimals; "–" when either value is missing or AES is undefined."""
    acc, length = plots.accuracy_and_length(s)
    base_acc, base_length = plots.accuracy_and_length(base)
    if acc is None or length is None or base_acc is None or base_length is None:
        return md.DASH
    try:
        return f"{metrics.aes(acc, length, base_acc, base_length):.2f}"
    except ValueError:  # zero baseline accuracy or length: the relative changes are undefined
        return md.DASH

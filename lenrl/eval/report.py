"""Markdown reports and PNG plots from evaluation outputs already on disk (docs/algorithms.md §11).

An evaluation output directory holds one subdirectory per benchmark with `summary.json` (every metric,
computed by the runner) and `samples.jsonl` (one record per sample). This module only renders: it reads
those files, formats numbers and draws figures (`plots.py`); it computes no metric except the AES of a
comparison, which needs two models at once and goes through `metrics.aes`.

Outputs are written whole or not at all: every figure and table is rendered in memory first (so bad input
fails before anything is written), then each file goes to a temporary name and is moved into place with
`os.replace`; the Markdown file is written last, so a report that exists has all its images.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenrl.errors import LenrlError
from lenrl.eval import metrics, plots
from lenrl.eval.plots import budget_points, number
from lenrl.files import atomic_write
from lenrl.testbed.metrics import testbed_markdown

DASH = "–"  # missing or NaN value
DIR_KEY = "_dir"  # added by load_results: the benchmark subdirectory (where samples.jsonl lies)

# --- Loading


def load_results(out_dir: str | os.PathLike) -> list[dict]:
    """The summaries of every `<benchmark>/summary.json` under `out_dir`, sorted by benchmark name.

    Each summary gains `_dir` (its subdirectory, to find `samples.jsonl`) and, when it lacks one, a
    `benchmark` taken from the subdirectory name. JSON `NaN` / `Infinity` (what Python's json writes)
    are accepted. Raises LenrlError naming the file for unreadable or non-object JSON.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise LenrlError(f"{out_dir}: evaluation output directory does not exist")
    paths = sorted(out_dir.glob("*/summary.json"))
    if not paths:
        raise LenrlError(f"{out_dir}: no evaluation results found (no <benchmark>/summary.json)")
    summaries: list[dict] = []
    seen: dict[str, Path] = {}
    for path in paths:
        s = _read_summary(path)
        name = s.get("benchmark")
        s["benchmark"] = name if isinstance(name, str) and name else path.parent.name
        s[DIR_KEY] = str(path.parent)
        if s["benchmark"] in seen:  # two plots / table rows would silently collide
            raise LenrlError(f"{path}: benchmark {s['benchmark']!r} is also claimed by {seen[s['benchmark']]}")
        seen[s["benchmark"]] = path
        summaries.append(s)
    return sorted(summaries, key=lambda s: s["benchmark"])


def _read_summary(path: Path) -> dict:
    """The parsed summary; LenrlError naming the file when it is unreadable or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LenrlError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LenrlError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise LenrlError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _load_samples(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(response_len, correct) arrays from samples.jsonl; None when the file is missing or empty."""
    if not path.is_file():
        return None
    lens, correct = [], []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                n, c = row["response_len"], row["correct"]
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise LenrlError(f"{path}:{lineno}: bad sample record ({type(e).__name__}: {e})") from None
            if isinstance(n, bool) or not isinstance(n, (int, float)) or c not in (True, False, 0, 1):
                raise LenrlError(f"{path}:{lineno}: response_len must be a number and correct a boolean")
            lens.append(float(n))
            correct.append(bool(c))
    return (np.array(lens), np.array(correct, dtype=bool)) if lens else None


# --- Access and formatting


def _get(d: object, *keys: str) -> object:
    """d[k0][k1]...; None where a level is missing or not a dict (summaries may lack optional parts)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _fmt(v: object, spec: str, scale: float = 1.0) -> str:
    x = number(v)
    if x is None:
        return DASH
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(scale * x, spec)


def _pct(v: object) -> str:
    """A fraction as a percentage with one decimal, without the sign: the column header says (%)."""
    return _fmt(v, ".1f", 100.0)


def _tok(v: object) -> str:
    return _fmt(v, ".1f")


def _plain(v: object) -> str:
    if v is None:
        return DASH
    return format(v, "g") if isinstance(v, float) else str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would split a table cell


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Markdown table lines: the first `left` columns left-aligned (names), the rest right-aligned (numbers)."""
    lines = ["| " + " | ".join(header) + " |", "|" + ":---|" * left + "---:|" * (len(header) - left)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _keyed(d: object, cast: type = int) -> dict:
    """{"4": v} -> {4: v}; cast=float makes "0.1" and "0.10" one key. Non-numeric keys are dropped."""
    out = {}
    for k, v in d.items() if isinstance(d, dict) else ():
        with contextlib.suppress(ValueError):
            out[cast(k)] = v
    return out


def _ks(dicts: Sequence[object], cast: type = int) -> list:
    """Sorted union of the numeric keys of several dicts (pass@k ks, shortest fractions)."""
    return sorted({k for d in dicts for k in _keyed(d, cast)})


# --- One model: report.md + plots/


def write_report(out_dir: str | os.PathLike) -> Path:
    """Write `out_dir/report.md` and `out_dir/plots/*.png` for one model; returns the report path.

    Plots per benchmark: `accuracy_vs_budget_<bench>.png` (skipped, and a stale one removed, when the
    benchmark has no budgets) and `length_hist_<bench>.png` (skipped when samples.jsonl is missing or empty).
    """
    out_dir = Path(out_dir)
    summaries = load_results(out_dir)
    slugs = plots.file_stems([s["benchmark"] for s in summaries])
    pngs: dict[str, bytes | None] = {}  # file name -> PNG, None = nothing to draw this time
    for s in summaries:
        samples = _load_samples(Path(s[DIR_KEY]) / "samples.jsonl")
        pngs.update(plots.benchmark_pngs(s, slugs[s["benchmark"]], samples))
    text = _report_markdown(summaries, slugs, {name for name, png in pngs.items() if png is not None})
    return _write_outputs(out_dir, "report.md", text, pngs)


def _report_markdown(summaries: list[dict], slugs: dict[str, str], drawn: set[str]) -> str:
    lines = _header_lines(summaries) + ["", "## Results", ""] + _main_table(summaries)
    lines += ["", _COLUMNS_NOTE]
    lines += testbed_markdown(summaries)  # accuracy and length / L* by difficulty (testbed benchmarks only)
    lines += _length_control_lines(summaries)
    baselines = sorted({str(b) for s in summaries if (b := _get(s, "aes", "baseline")) is not None})
    if baselines:
        lines += ["", f"AES is measured against the baseline {', '.join(f'`{b}`' for b in baselines)}."]
    lines += ["", "## Throughput", ""] + [_throughput_line(s) for s in summaries]
    for s in summaries:
        bench, slug = s["benchmark"], slugs[s["benchmark"]]
        lines += ["", f"## {bench}", ""]
        lines += _budget_table(s) if budget_points(s) else ["No token budgets were evaluated."]
        for stem, alt in (("accuracy_vs_budget", "accuracy vs budget"), ("length_hist", "length histogram")):
            if f"{stem}_{slug}.png" in drawn:
                lines += ["", f"![{alt}: {bench}](plots/{stem}_{slug}.png)"]
        if f"length_hist_{slug}.png" not in drawn:
            lines += ["", "No samples.jsonl records: no length histogram."]
    return "\n".join(lines) + "\n"


_COLUMNS_NOTE = (
    "Accuracies and rates in %, lengths in tokens. avg@k: mean correctness over all k samples; "
    "pass@k: unbiased pass@k; maj@k: majority-vote accuracy; len ✓ / ✗: mean length of correct / incorrect "
    "responses; think / answer: mean thinking and answer spans; trunc.: responses cut at max_tokens; "
    "tok/✓: generated tokens per correct answer; short q%: accuracy of the shortest q% of responses; "
    f"{DASH}: not available."
)


def _header_lines(summaries: list[dict]) -> list[str]:
    """Title and settings; values that differ across benchmarks are all shown, joined by ' / '."""

    def distinct(*keys: str) -> str:
        return " / ".join(dict.fromkeys(_plain(_get(s, *keys)) for s in summaries))  # ordered set

    settings = ", ".join(f"{k}={distinct('settings', k)}" for k in ("n", "temperature", "top_p", "max_tokens", "seed"))
    benches = ", ".join(
        f"{s['benchmark']} ({_plain(s.get('num_questions'))} questions, {_plain(s.get('num_samples'))} samples)"
        for s in summaries
    )
    return [
        f"# Evaluation report: {distinct('label')}",
        "",
        f"- model: `{distinct('model')}`",
        f"- settings: {settings}",
        f"- benchmarks: {benches}",
    ]


def _main_table(summaries: list[dict]) -> list[str]:
    """One row per benchmark; the pass@k / maj@k / shortest-fraction columns are the union over benchmarks."""
    pass_ks = _ks([_get(s, "accuracy", "pass@k") for s in summaries])
    maj_ks = _ks([_get(s, "accuracy", "maj@k") for s in summaries])
    fracs = _ks([s.get("shortest_fraction_accuracy") for s in summaries], float)
    with_aes = any(isinstance(s.get("aes"), dict) for s in summaries)
    header = ["benchmark", "avg@k (%)"] + [f"pass@{k} (%)" for k in pass_ks] + [f"maj@{k} (%)" for k in maj_ks]
    header += ["mean len", "median len", "p90 len", "len ✓", "len ✗", "think", "answer", "trunc. (%)", "tok/✓"]
    header += [f"short {100 * q:g}% (%)" for q in fracs] + (["AES"] if with_aes else [])
    rows = []
    for s in summaries:
        acc, length, short = s.get("accuracy"), s.get("length"), _keyed(s.get("shortest_fraction_accuracy"), float)
        row = [_cell(s["benchmark"]), _pct(_get(acc, "avg@k"))]
        row += [_pct(_keyed(_get(acc, "pass@k")).get(k)) for k in pass_ks]
        row += [_pct(_keyed(_get(acc, "maj@k")).get(k)) for k in maj_ks]
        row += [_tok(_get(length, "all", key)) for key in ("mean", "median", "p90")]
        row += [_tok(_get(length, "correct", "mean")), _tok(_get(length, "incorrect", "mean"))]
        row += [_tok(_get(s, "spans", "think_mean")), _tok(_get(s, "spans", "answer_mean"))]
        row += [_pct(s.get("truncation_rate")), _tok(s.get("tokens_per_correct"))]
        row += [_pct(short.get(q)) for q in fracs] + ([_fmt(_get(s, "aes", "value"), ".2f")] if with_aes else [])
        rows.append(row)
    return _table(header, rows)


def _length_control_lines(summaries: list[dict]) -> list[str]:
    """The length-control table (L1's length error, arXiv 2503.04697 §4) of the benchmarks evaluated with
    target lengths in the prompt; nothing for the others."""
    with_lc = [(s, lc) for s in summaries if isinstance(lc := s.get("length_control"), dict)]
    if not with_lc:
        return []
    rows = [
        [_cell(s["benchmark"]), _tok(lc.get("mean_target")), _tok(lc.get("mean_abs_error"))]
        + [_pct(lc.get("mean_relative_error")), _fmt(lc.get("correlation"), ".3f")]
        + [_pct(lc.get("within_tolerance")), _pct(lc.get("over_target"))]
        for s, lc in with_lc
    ]
    tol = _fmt(with_lc[0][1].get("tolerance"), "g", 100.0)
    header = ["benchmark", "mean target", "mean \\|len − target\\|", "relative error (%)", "corr(target, len)"]
    header += [f"within ±{tol}% (%)", "over target (%)"]
    note = (
        "Target lengths N in the prompt (`--target-len`); relative error: mean |len − N| / N; corr: Pearson "
        "correlation of N and the realised length over all samples; over target: len > N."
    )
    return ["", "## Length control", ""] + _table(header, rows) + ["", note]


def _budget_table(s: dict) -> list[str]:
    header = ["budget", "truncation acc (%)", "forcing acc (%)", "mean tokens (truncation)", "mean tokens (forcing)"]
    rows = [
        [
            _plain(p["budget"]),
            _pct(p.get("truncation")),
            _pct(p.get("forcing")),
            _tok(p.get("mean_tokens_truncation")),
            _tok(p.get("mean_tokens_forcing")),
        ]
        for p in budget_points(s)
    ]
    return _table(header, rows)


def _throughput_line(s: dict) -> str:
    t = s.get("throughput")
    return (
        f"- {s['benchmark']}: {_fmt(_get(t, 'seconds'), '.1f')} s, {_fmt(_get(t, 'questions_per_s'), '.2f')} "
        f"questions/s, {_fmt(_get(t, 'tokens_per_s'), '.1f')} tokens/s, "
        f"{_fmt(_get(t, 'generated_tokens'), '.0f')} generated tokens"
    )


# --- Several models: comparison.md + plots/


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
    return _write_outputs(Path(dest), "comparison.md", _comparison_markdown(models, benches, slugs, drawn), pngs)


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
            f"AES is measured against the baseline **{_cell(base)}** (the first model) from avg@k and mean length "
            f"(`lenrl.eval.metrics.aes`, alpha=1, beta=3, gamma=5); the baseline's own AES is 0.00, and {DASH} marks "
            "a benchmark the baseline lacks or a zero baseline accuracy or length. Accuracies and rates in %, "
            "lengths in tokens."
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
            [str(i + 1), _cell(m.label), f"`{_cell(_plain(first.get('model')))}`"]
            + [_plain(_get(first, "settings", k)) for k in ("n", "temperature", "max_tokens")]
            + [f"`{_cell(str(m.out_dir))}`"]
        )
    return _table(["#", "label", "model", "n", "temperature", "max_tokens", "output dir"], rows, left=3)


def _comparison_table(models: list[_Model], bench: str) -> list[str]:
    base = models[0].by_bench.get(bench)
    max_ks = {m.label: max(ks) for m in models if (ks := _ks([_get(m.by_bench.get(bench), "accuracy", "pass@k")]))}
    same_k = len(set(max_ks.values())) == 1
    pass_header = f"pass@{next(iter(max_ks.values()))} (%)" if same_k else "pass@max k (%)"
    rows = []
    for m in models:
        s, k = m.by_bench.get(bench), max_ks.get(m.label)
        pass_cell = _pct(_keyed(_get(s, "accuracy", "pass@k")).get(k)) if k is not None else DASH
        if k is not None and not same_k:
            pass_cell += f" (k={k})"
        rows.append(
            [
                _cell(m.label),
                _pct(_get(s, "accuracy", "avg@k")),
                pass_cell,
                _tok(_get(s, "length", "all", "mean")),
                _pct(_get(s, "truncation_rate")),
                _tok(_get(s, "tokens_per_correct")),
                _aes_cell(s, base),
            ]
        )
    aes_header = f"AES vs {_cell(models[0].label)}"
    return _table(["model", "avg@k (%)", pass_header, "mean len", "trunc. (%)", "tok/✓", aes_header], rows)


def _aes_cell(s: dict | None, base: dict | None) -> str:
    """AES of `s` against `base` with two decimals; "–" when either value is missing or AES is undefined."""
    acc, length = plots.accuracy_and_length(s)
    base_acc, base_length = plots.accuracy_and_length(base)
    if acc is None or length is None or base_acc is None or base_length is None:
        return DASH
    try:
        return f"{metrics.aes(acc, length, base_acc, base_length):.2f}"
    except ValueError:  # zero baseline accuracy or length: the relative changes are undefined
        return DASH


# --- Writing


def _write_outputs(root: Path, md_name: str, text: str, pngs: dict[str, bytes | None]) -> Path:
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

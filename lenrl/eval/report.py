"""Markdown reports and PNG plots from evaluation outputs already on disk (docs/algorithms.md §11).

An evaluation output directory holds one subdirectory per benchmark with `summary.json` (every metric,
computed by the runner) and `samples.jsonl` (one record per sample). This module only renders one model's
`report.md`: it reads those files, formats numbers (`markdown.py`) and draws figures (`plots.py`); it
computes no metric. Comparisons over several models are comparison.py's.

Outputs are written whole or not at all: every figure and table is rendered in memory first (so bad input
fails before anything is written), then each file goes to a temporary name and is moved into place with
`os.replace`; the Markdown file is written last, so a report that exists has all its images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lenrl.errors import LenrlError
from lenrl.eval import markdown as md
from lenrl.eval import plots
from lenrl.eval.plots import budget_points
from lenrl.testbed.metrics import testbed_markdown

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
    return md.write_outputs(out_dir, "report.md", text, pngs)


def _report_markdown(summaries: list[dict], slugs: dict[str, str], drawn: set[str]) -> str:
    lines = _header_lines(summaries) + ["", "## Results", ""] + _main_table(summaries)
    lines += ["", _COLUMNS_NOTE]
    lines += testbed_markdown(summaries)  # accuracy and length / L* by difficulty (testbed benchmarks only)
    lines += _length_control_lines(summaries)
    baselines = sorted({str(b) for s in summaries if (b := md.get(s, "aes", "baseline")) is not None})
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
    f"{md.DASH}: not available."
)


def _header_lines(summaries: list[dict]) -> list[str]:
    """Title and settings; values that differ across benchmarks are all shown, joined by ' / '."""

    def distinct(*keys: str) -> str:
        return " / ".join(dict.fromkeys(md.plain(md.get(s, *keys)) for s in summaries))  # ordered set

    settings = ", ".join(f"{k}={distinct('settings', k)}" for k in ("n", "temperature", "top_p", "max_tokens", "seed"))
    benches = ", ".join(
        f"{s['benchmark']} ({md.plain(s.get('num_questions'))} questions, {md.plain(s.get('num_samples'))} samples)"
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
    pass_ks = md.ks([md.get(s, "accuracy", "pass@k") for s in summaries])
    maj_ks = md.ks([md.get(s, "accuracy", "maj@k") for s in summaries])
    fracs = md.ks([s.get("shortest_fraction_accuracy") for s in summaries], float)
    with_aes = any(isinstance(s.get("aes"), dict) for s in summaries)
    header = ["benchmark", "avg@k (%)"] + [f"pass@{k} (%)" for k in pass_ks] + [f"maj@{k} (%)" for k in maj_ks]
    header += ["mean len", "median len", "p90 len", "len ✓", "len ✗", "think", "answer", "trunc. (%)", "tok/✓"]
    header += [f"short {100 * q:g}% (%)" for q in fracs] + (["AES"] if with_aes else [])
    rows = []
    for s in summaries:
        acc, length, short = s.get("accuracy"), s.get("length"), md.keyed(s.get("shortest_fraction_accuracy"), float)
        row = [md.cell(s["benchmark"]), md.pct(md.get(acc, "avg@k"))]
        row += [md.pct(md.keyed(md.get(acc, "pass@k")).get(k)) for k in pass_ks]
        row += [md.pct(md.keyed(md.get(acc, "maj@k")).get(k)) for k in maj_ks]
        row += [md.tok(md.get(length, "all", key)) for key in ("mean", "median", "p90")]
        row += [md.tok(md.get(length, "correct", "mean")), md.tok(md.get(length, "incorrect", "mean"))]
        row += [md.tok(md.get(s, "spans", "think_mean")), md.tok(md.get(s, "spans", "answer_mean"))]
        row += [md.pct(s.get("truncation_rate")), md.tok(s.get("tokens_per_correct"))]
        row += [md.pct(short.get(q)) for q in fracs] + ([md.fmt(md.get(s, "aes", "value"), ".2f")] if with_aes else [])
        rows.append(row)
    return md.table(header, rows)


def _length_control_lines(summaries: list[dict]) -> list[str]:
    """The length-control table (L1's length error, arXiv 2503.04697 §4) of the benchmarks evaluated with
    target lengths in the prompt; nothing for the others."""
    with_lc = [(s, lc) for s in summaries if isinstance(lc := s.get("length_control"), dict)]
    if not with_lc:
        return []
    rows = [
        [md.cell(s["benchmark"]), md.tok(lc.get("mean_target")), md.tok(lc.get("mean_abs_error"))]
        + [md.pct(lc.get("mean_relative_error")), md.fmt(lc.get("correlation"), ".3f")]
        + [md.pct(lc.get("within_tolerance")), md.pct(lc.get("over_target"))]
        for s, lc in with_lc
    ]
    tol = md.fmt(with_lc[0][1].get("tolerance"), "g", 100.0)
    header = ["benchmark", "mean target", "mean \\|len − target\\|", "relative error (%)", "corr(target, len)"]
    header += [f"within ±{tol}% (%)", "over target (%)"]
    note = (
        "Target lengths N in the prompt (`--target-len`); relative error: mean |len − N| / N; corr: Pearson "
        "correlation of N and the realised length over all samples; over target: len > N."
    )
    return ["", "## Length control", ""] + md.table(header, rows) + ["", note]


def _budget_table(s: dict) -> list[str]:
    header = ["budget", "truncation acc (%)", "forcing acc (%)", "mean tokens (truncation)", "mean tokens (forcing)"]
    rows = [
        [
            md.plain(p["budget"]),
            md.pct(p.get("truncation")),
            md.pct(p.get("forcing")),
            md.tok(p.get("mean_tokens_truncation")),
            md.tok(p.get("mean_tokens_forcing")),
        ]
        for p in budget_points(s)
    ]
    return md.table(header, rows)


def _throughput_line(s: dict) -> str:
    t = s.get("throughput")
    return (
        f"- {s['benchmark']}: {md.fmt(md.get(t, 'seconds'), '.1f')} s, {md.fmt(md.get(t, 'questions_per_s'), '.2f')} "
        f"questions/s, {md.fmt(md.get(t, 'tokens_per_s'), '.1f')} tokens/s, "
        f"{md.fmt(md.get(t, 'generated_tokens'), '.0f')} generated tokens"
    )


# --- Several models: comparison.md + plots/

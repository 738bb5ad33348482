"""The comparison's outputs: `results.md` (one row per method) and the plots `pareto.png` (held-out
accuracy against mean length, one point per method, the start model marked) and `curves.png` (each
method's training-batch mean length and accuracy per step, from its metrics.jsonl).

Every number is read from the evaluation summaries (lenrl/eval/summary.py, with its `testbed` section from
lenrl/testbed/metrics.py, and its `length_control` section for the evaluations with target lengths) and the
training runs; nothing is recomputed here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lenrl.eval.plots import compare_accuracy_vs_length_png
from lenrl.eval.report import load_results
from lenrl.files import atomic_write


def _num(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _row(label: str, s: dict, base: dict | None, train: dict | None, note: str) -> list[str]:
    tb = s.get("testbed") or {}
    length = s["length"]["all"]
    mean = length["mean"]
    change = "—" if base is None else f"{100 * (mean / base['length']['all']['mean'] - 1):+.0f}%"
    by_d = tb.get("by_difficulty", {})
    per_d = " ".join(f"{d}:{v['accuracy']:.2f}/{v['mean_length']:.0f}" for d, v in sorted(by_d.items()))
    aes = (s.get("aes") or {}).get("value")
    wall = "—" if not train else f"{train['train_seconds'] / 60:.1f}"
    return [
        label,
        _num(s["accuracy"]["avg@k"]),
        _num(mean, ".1f"),
        _num(length["p90"], ".0f"),
        change,
        _num(tb.get("excess_length"), ".2f"),
        _num(s.get("truncation_rate"), ".3f"),
        per_d or "—",
        _num(aes, ".3f"),
        wall,
        note,
    ]


HEADER = [
    "method",
    "avg@k acc",
    "mean len",
    "p90 len",
    "len vs start",
    "len / L*",
    "trunc.",
    "acc/len by steps",
    "AES vs start",
    "train min",
    "note",
]


def write_results(out: Path, labels: list[str], methods: dict) -> Path:
    """Write results.md, pareto.png and curves.png for the methods of `labels` evaluated so far."""
    summaries = {}
    for label in labels:
        d = out / "evals" / label
        if d.is_dir() and list(d.glob("*/summary.json")):
            summaries[label] = load_results(d)[0]
    base = summaries.get("start")
    rows = []
    for label, s in summaries.items():
        info = out / "runs" / label / "compare.json"
        train = json.loads(info.read_text()) if info.exists() else None
        m = methods.get(label)
        note = "starting model" if label == "start" else (m.note if m else "")
        rows.append(_row(label, s, None if label == "start" else base, train, note))
    first = next(iter(summaries.values()), {})
    settings = first.get("settings", {})
    lines = [
        "# Length-control methods on the testbed",
        "",
        f"Held-out problems: {first.get('num_questions')} of {first.get('benchmark')}, "
        f"{settings.get('n')} samples each at temperature {settings.get('temperature')}, "
        f"cap {settings.get('max_tokens')} tokens. avg@k: mean accuracy over the samples; "
        "len: generated tokens (EOS included); L*: the minimal trace's length; acc/len by steps: "
        "difficulty:accuracy/mean length.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(r) + " |" for r in rows),
        *_length_control_lines(out, [label for label in summaries if label != "start"], methods),
        "",
        "![accuracy against mean length](pareto.png)",
        "",
        "![training curves](curves.png)",
        "",
    ]
    points = [
        (i, label, s["length"]["all"]["mean"], s["accuracy"]["avg@k"]) for i, (label, s) in enumerate(summaries.items())
    ]
    if points:
        atomic_write(out / "pareto.png", compare_accuracy_vs_length_png("held-out accuracy vs mean length", points))
    curves = _curves_png(out, [label for label in summaries if label != "start"])
    if curves:
        atomic_write(out / "curves.png", curves)
    path = out / "results.md"
    atomic_write(path, "\n".join(lines))
    return path


LC_HEADER = [
    "model",
    "targets",
    "mean \\|len − target\\|",
    "relative error",
    "corr(target, len)",
    "within ±20%",
    "over target",
    "avg@k acc",
    "mean len",
]


def _length_control_lines(out: Path, labels: list[str], methods: dict) -> list[str]:
    """L1's promise, measured: for each method trained with target lengths, its length-control error (L1
    arXiv 2503.04697 §4) before training (the start model) and after, from the evaluations with the targets
    in the prompt (`<out>/evals/length_control/`). Nothing when no such evaluation exists yet."""
    lines: list[str] = []
    for label in labels:
        m = methods.get(label)
        lc_dir = out / "evals" / "length_control"
        found = {k: load_results(lc_dir / k)[0] for k in ("start", label) if list((lc_dir / k).glob("*/summary.json"))}
        if m is None or m.target_len is None or not found:
            continue
        lo, hi = m.target_len
        rows = []
        for k, s in found.items():
            lc = s.get("length_control") or {}
            rows.append(
                [
                    "start (before training)" if k == "start" else f"{k} (after training)",
                    f"U{{{lo}..{hi}}}",
                    _num(lc.get("mean_abs_error"), ".1f"),
                    _num(lc.get("mean_relative_error"), ".2f"),
                    _num(lc.get("correlation"), ".3f"),
                    _num(lc.get("within_tolerance"), ".2f"),
                    _num(lc.get("over_target"), ".2f"),
                    _num(s["accuracy"]["avg@k"]),
                    _num(s["length"]["all"]["mean"], ".1f"),
                ]
            )
        lines += [
            "",
            f"**{label}: length control with target lengths in the prompt** (held-out problems, each with a target "
            f"N ~ U{{{lo}..{hi}}} written as the training instruction says; relative error: mean |len − N| / N; "
            "corr: Pearson correlation of N and the realised length; over target: len > N)",
            "",
            "| " + " | ".join(LC_HEADER) + " |",
            "|" + "---|" * len(LC_HEADER),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]
    return lines


def _curves_png(out: Path, labels: list[str]) -> bytes | None:
    """Every trained method's training mean length and accuracy over steps (lenrl/trainer/plots.py)."""
    from lenrl.trainer.plots import curves_png, read_metrics

    dirs = [(label, out / "runs" / label) for label in labels]
    runs = [(label, read_metrics(d)) for label, d in dirs if (d / "metrics.jsonl").exists()]
    if not runs:
        return None
    panels = [("training mean length (tokens)", ("len/mean",)), ("training accuracy", ("reward/accuracy",))]
    return curves_png(runs, panels)

"""Before/after numbers for `lenrl edit` and `lenrl merge`: the models go through `lenrl eval` itself (one
command, several `--model`s, so the same prompts, seeds and graders), and this module reads back the
numbers the edit reports quote: accuracy, mean thinking length, and the accuracy of the shortest 5/10/20%
of responses (ThinkEdit's own metric, docs/algorithms.md §7.6).
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError

RESERVED = ("--model", "--label", "--out")
EVAL_DIR = "eval"


def eval_argv(text: str) -> list[str]:
    """`--eval` options, checked by `lenrl eval`'s own parser before anything runs."""
    from lenrl.evaluate import parse_args

    argv = shlex.split(text)
    taken = [a.split("=")[0] for a in argv if a.split("=")[0] in RESERVED]
    if taken:
        raise LenrlError(f"--eval: {taken[0]} is set by the command itself; remove it from {text!r}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parse_args(argv)
    except SystemExit:  # argparse's usage and message: keep its last line, the message
        why = err.getvalue().strip().splitlines()[-1].removeprefix("lenrl eval: error: ")
        raise LenrlError(f"--eval: not valid `lenrl eval` options ({why}): {text!r}") from None
    return argv


def evaluate(models: list[tuple[str, str]], argv: list[str], out: Path) -> list[dict[str, Any]]:
    """Run `lenrl eval` on (label, model) pairs into `out` (resumable); one row per label and benchmark."""
    from lenrl.evaluate import main as eval_main

    cmd = [*argv, "--out", str(out)]
    for label, model in models:
        cmd += ["--model", model, "--label", label]
    if eval_main(cmd) != 0:
        raise LenrlError(f"lenrl eval failed on {', '.join(label for label, _ in models)} (see above)")
    return [row(label, s) for label, _ in models for s in summaries(out / label)]


def summaries(d: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted(d.glob("*/summary.json"))]


def row(label: str, s: dict) -> dict[str, Any]:
    short = s.get("shortest_fraction_accuracy") or {}
    return {
        "label": label,
        "benchmark": s["benchmark"],
        "accuracy": s["accuracy"]["avg@k"],
        "think_mean": s["spans"]["think_mean"],
        "len_mean": s["length"]["all"]["mean"],
        "truncated": s["truncation_rate"],
        **{f"short_{k}": v for k, v in short.items()},
    }


def table(rows: list[dict[str, Any]], first: str = "model") -> list[str]:
    """Markdown lines: one row per (label, benchmark)."""
    fracs = sorted({k for r in rows for k in r if k.startswith("short_")}, key=lambda k: float(k[6:]))
    head = [first, "benchmark", "accuracy", "mean thinking", "mean length", "trunc."]
    head += [f"acc. shortest {float(k[6:]):.0%}" for k in fracs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], r["benchmark"], f"{r['accuracy']:.3f}", f"{r['think_mean']:.1f}", f"{r['len_mean']:.1f}"]
        cells += [f"{r['truncated']:.3f}"] + [f"{r[k]:.3f}" if k in r else "–" for k in fracs]
        lines.append("| " + " | ".join(cells) + " |")
    return lines

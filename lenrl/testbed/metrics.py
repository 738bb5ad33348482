"""Testbed metrics of an evaluation: accuracy and length by difficulty, excess length (length / L*),
truncation rate. The difficulty and L* of each sample come from its question id (`task.parse_id`), so
these need nothing but the per-sample records.

Excess length is mean(length) / mean(L*) over samples (a ratio of means: long chains weigh by their
length, as total tokens do) and, per sample, mean(length / L*).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from lenrl.testbed.task import min_len, parse_id


class Sample(Protocol):
    """What these metrics read of a sample record (lenrl.eval.samples.SampleRecord fits; read-only)."""

    @property
    def qid(self) -> str: ...
    @property
    def response_len(self) -> int: ...
    @property
    def correct(self) -> bool: ...
    @property
    def truncated(self) -> bool: ...


def testbed_summary(questions: Sequence[Sequence[Sample]]) -> dict[str, Any] | None:
    """The testbed section of a summary, or None when any question is not a testbed problem."""
    chains = [parse_id(q[0].qid) if q else None for q in questions]
    if not questions or any(c is None for c in chains):
        return None
    rows = [(c.steps, min_len(c), r) for c, q in zip(chains, questions, strict=True) for r in q if c is not None]
    steps = np.array([s for s, _, _ in rows])
    lstar = np.array([m for _, m, _ in rows], dtype=np.float64)
    length = np.array([r.response_len for _, _, r in rows], dtype=np.float64)
    correct = np.array([r.correct for _, _, r in rows], dtype=bool)
    truncated = np.array([r.truncated for _, _, r in rows], dtype=bool)

    def part(mask: np.ndarray) -> dict[str, float]:
        return {
            "samples": int(mask.sum()),
            "accuracy": float(correct[mask].mean()),
            "mean_length": float(length[mask].mean()),
            "mean_min_len": float(lstar[mask].mean()),
            "excess_length": float(length[mask].mean() / lstar[mask].mean()),
            "truncation_rate": float(truncated[mask].mean()),
        }

    out: dict[str, Any] = part(np.ones_like(correct))
    out["mean_length_ratio"] = float((length / lstar).mean())
    out["by_difficulty"] = {str(int(d)): part(steps == d) for d in np.unique(steps)}
    return out


def testbed_markdown(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """Report lines for the summaries that hold a testbed section: one table per benchmark, by difficulty."""
    lines: list[str] = []
    for s in summaries:
        tb = s.get("testbed")
        if not tb:
            continue
        lines += ["", f"## {s.get('benchmark')}: by difficulty (testbed)", ""]
        lines += [
            "| steps | samples | accuracy | mean length | L* | length / L* | trunc. |",
            "|---|---|---|---|---|---|---|",
        ]
        for d, v in [*sorted(tb["by_difficulty"].items(), key=lambda kv: int(kv[0])), ("all", tb)]:
            lines.append(
                f"| {d} | {v['samples']} | {100 * v['accuracy']:.1f} | {v['mean_length']:.1f} | "
                f"{v['mean_min_len']:.1f} | {v['excess_length']:.2f} | {100 * v['truncation_rate']:.1f} |"
            )
    return lines

"""One model on one benchmark: per-sample records -> the summary written to `summary.json`.

Every number comes from `lenrl.eval.metrics` (tested against brute force there); this module only lays the
records out as the metric functions expect. Lengths are generated tokens, thinking included (§11.3).
Truncated responses are graded as they stand for avg@k / pass@k / maj@k (DLER and L1 evaluation); the
accuracy-vs-budget curve instead reports (a) hard truncation, where a response cut at the budget has no
answer, and (b) budget forcing (s1), where it is made to answer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lenrl.eval import length_control as LC
from lenrl.eval import metrics as M
from lenrl.eval.samples import SampleRecord
from lenrl.testbed.metrics import testbed_summary

SHORTEST_FRACTIONS = (0.05, 0.10, 0.20)


def ks(n: int) -> list[int]:
    """k values reported for pass@k and maj@k: powers of two up to n, and n itself."""
    out = [k for k in (2**i for i in range(12)) if k < n]
    return out + [n]


def summarize(
    questions: list[list[SampleRecord]], budgets: list[int], *, aes_base: dict | None = None
) -> dict[str, Any]:
    """The summary of `questions` (each the n records of one question, ordered by sample index).

    `aes_base`: {"label", "accuracy", "length"} of a baseline run on the same benchmark, for AES."""
    flat = [r for q in questions for r in q]
    n = min(len(q) for q in questions)
    correct_q = [[r.correct for r in q] for q in questions]
    len_B = np.array([r.response_len for r in flat])
    correct_B = np.array([r.correct for r in flat])
    lengths = M.length_stats(len_B, correct_B)
    spans = M.think_answer_lengths(len_B, np.array([r.think_len for r in flat]))
    acc = M.avg_at_k(correct_q, n)
    out: dict[str, Any] = {
        "num_questions": len(questions),
        "num_samples": len(flat),
        "accuracy": {
            "avg@k": acc,
            "pass@k": {str(k): M.mean_pass_at_k(correct_q, k) for k in ks(n)},
            "maj@k": {str(k): M.maj_at_k([[r.answer for r in q] for q in questions], correct_q, k) for k in ks(n)},
        },
        "length": {
            name: vars(getattr(lengths, attr))
            for name, attr in (("all", "overall"), ("correct", "correct"), ("incorrect", "incorrect"))
        },
        "spans": vars(spans),
        "truncation_rate": M.truncation_rate(np.array([r.truncated for r in flat])),
        "tokens_per_correct": M.tokens_per_correct(len_B, correct_B),
        "shortest_fraction_accuracy": {
            str(q): v for q, v in M.shortest_fraction_accuracy(len_B, correct_B, SHORTEST_FRACTIONS).items()
        },
        "budget_curve": budget_curve(flat, budgets),
        "aes": None,
    }
    if aes_base is not None:
        out["aes"] = _aes(acc, float(len_B.mean()), aes_base)
    control = length_control(flat)
    if control is not None:
        out["length_control"] = control
    testbed = testbed_summary(questions)  # accuracy and length / L* by difficulty; None off the testbed
    if testbed is not None:
        out["testbed"] = testbed
    return out


def length_control(flat: list[SampleRecord]) -> dict[str, Any] | None:
    """Length-control error against the target lengths in the prompts (L1, arXiv 2503.04697 §4), or None
    when the samples carry no targets (the summary then has no `length_control` section)."""
    if not flat or any(r.target is None for r in flat):
        return None
    len_B = np.array([r.response_len for r in flat])
    return vars(LC.length_control(len_B, np.array([r.target for r in flat])))


def budget_curve(flat: list[SampleRecord], budgets: list[int]) -> list[dict[str, float]]:
    """Accuracy and mean tokens at each budget, under hard truncation and under budget forcing."""
    if not budgets:
        return []
    len_B = np.array([r.response_len for r in flat])
    trunc = M.accuracy_vs_budget(
        len_B, np.array([r.correct for r in flat]), np.array([r.finished for r in flat]), budgets
    )
    rows = []
    for b, acc_t in zip(budgets, trunc, strict=True):
        forced = [r.at_budget(b) for r in flat]
        rows.append(
            {
                "budget": b,
                "truncation": float(acc_t),
                "forcing": float(np.mean([c for c, _ in forced])),
                "mean_tokens_truncation": float(np.minimum(len_B, b).mean()),
                "mean_tokens_forcing": float(np.mean([t for _, t in forced])),
            }
        )
    return rows


def _aes(acc: float, length: float, base: dict) -> dict[str, Any] | None:
    a0, l0 = base.get("accuracy"), base.get("length")
    if not (isinstance(a0, float | int) and isinstance(l0, float | int)) or a0 <= 0 or l0 <= 0 or math.isnan(a0):
        return None  # AES is undefined against a baseline with no accuracy or no length
    return {
        "baseline": base.get("label"),
        "value": M.aes(acc, length, a0, l0),
        "delta_length": (l0 - length) / l0,
        "delta_accuracy": (acc - a0) / a0,
        "base_accuracy": a0,
        "base_length": l0,
    }

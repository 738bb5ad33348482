"""Evaluation metrics over per-sample records (docs/algorithms.md §11.3), as pure numpy functions.

Inputs are 1-D per-response arrays with suffix `_B` (a list, numpy array or CPU torch tensor):
`len_B` generated tokens (thinking + answer, no prompt; §12.1), `think_len_B` tokens up to and
including `</think>` (0 when absent, as `Rollout.think_len`), `correct_B` bool (or 0/1),
`truncated_B` / `finished_B` bool (finish reason "length" / "stop"). Per-question metrics take
`*_per_question`: Q rows (ragged allowed), one entry per sample in sampling order.

Conventions: empty subsets give NaN (a length statistic of no responses), no correct answers give
`inf` tokens per correct, and an empty batch or any malformed input raises ValueError with a
one-line message.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _int(name: str, v: object) -> int:
    if isinstance(v, bool):
        raise ValueError(f"{name} must be an integer, got bool {v}")
    try:
        return operator.index(v)  # type: ignore[arg-type]  # non-integers raise TypeError, handled below
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {v!r}") from None


def _k(k: object) -> int:
    k = _int("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def _bool_B(name: str, x: object) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype == bool:
        return a
    if a.dtype.kind not in "biuf" or not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans or 0/1")
    return a.astype(bool)


def _len_B(name: str, x: object) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iuf" or np.isnan(a.astype(np.float64)).any() or (a < 0).any():
        raise ValueError(f"{name} must hold non-negative numbers (token counts)")
    return a.astype(np.float64)


def _same_nonempty(**arrays: np.ndarray) -> None:
    names, sizes = list(arrays), [a.shape[0] for a in arrays.values()]
    if len(set(sizes)) > 1:
        raise ValueError(f"{' and '.join(names)} must have the same length, got {' and '.join(map(str, sizes))}")
    if sizes[0] == 0:
        raise ValueError(f"{names[0]} is empty")


# ---------------------------------------------------------------------------------------------
# Correctness over k samples per question
# ---------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question (Chen et al. 2021, Codex, arXiv 2107.03374, §2.1).

    pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)   (product form: no huge
    binomials). n samples, c of them correct, 1 <= k <= n. Scalars in, scalar out.
    """
    n, c, k = _int("n", n), _int("c", c), _k(k)
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"need k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _rows(name: str, rows: Sequence[Sequence[object]], k: int) -> None:
    if len(rows) == 0:
        raise ValueError(f"{name} is empty")
    for q, row in enumerate(rows):
        if len(row) < k:
            raise ValueError(f"{name}[{q}] has {len(row)} samples, fewer than k={k}")


def mean_pass_at_k(correct_per_question: Sequence[Sequence[bool]], k: int) -> float:
    """Benchmark pass@k: mean over questions of `pass_at_k(n_q, c_q, k)`, using all n_q samples.

    Shapes: Q rows of n_q >= k booleans -> scalar. Paper: Chen et al. 2021, arXiv 2107.03374.
    """
    k = _k(k)
    _rows("correct_per_question", correct_per_question, k)
    rows = [_bool_B(f"correct_per_question[{q}]", r) for q, r in enumerate(correct_per_question)]
    return float(np.mean([pass_at_k(len(r), int(r.sum()), k) for r in rows]))


def avg_at_k(correct_per_question: Sequence[Sequence[bool]], k: int) -> float:
    """avg@k, the "pass@1" of DLER/DRPO/L1 tables (docs/algorithms.md §11.3).

    avg@k = (1/Q) sum_q (1/k) sum_{j<k} c_{q,j}, over the first k samples of each question.
    Shapes: Q rows of >= k booleans -> scalar.
    """
    k = _k(k)
    _rows("correct_per_question", correct_per_question, k)
    rows = [_bool_B(f"correct_per_question[{q}]", r) for q, r in enumerate(correct_per_question)]
    return float(np.mean([r[:k].mean() for r in rows]))


def majority_vote(answers: Sequence[str | None]) -> int | None:
    """Index of the sample whose answer wins a plurality vote; None when every answer is None.

    None (no extractable answer) never receives votes. Ties between answers with the same count
    go to the answer that appears first, and the returned index is that answer's first sample.
    Answers must already be normalised strings: equal strings are one cluster.
    """
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for j, a in enumerate(answers):
        if a is None:
            continue
        if not isinstance(a, str):
            raise ValueError(f"answers must be normalised strings or None, got {type(a).__name__}")
        count[a] = count.get(a, 0) + 1
        first.setdefault(a, j)
    if not count:
        return None
    best = max(count, key=lambda a: (count[a], -first[a]))
    return first[best]


def maj_at_k(
    answers_per_question: Sequence[Sequence[str | None]], correct_per_question: Sequence[Sequence[bool]], k: int
) -> float:
    """maj@k / cons@k: accuracy of the plurality-voted answer among the first k samples (§11.3;
    L1 `majority_at_k`, Aggarwal & Welleck 2025, arXiv 2503.04697).

    maj@k = (1/Q) sum_q c_{q, v_q},  v_q = majority_vote(answers_q[:k]) (ties: first-appearing answer).
    The voted answer's correctness is read from its first sample (equal normalised strings grade
    alike); a question whose k answers are all None counts as incorrect.
    Shapes: Q rows of >= k answers and Q matching rows of booleans -> scalar.
    """
    k = _k(k)
    _rows("answers_per_question", answers_per_question, k)
    if len(answers_per_question) != len(correct_per_question):
        raise ValueError(
            f"answers_per_question and correct_per_question must have the same number of questions, "
            f"got {len(answers_per_question)} and {len(correct_per_question)}"
        )
    hits = 0
    for q, (answers, correct) in enumerate(zip(answers_per_question, correct_per_question, strict=True)):
        if len(answers) != len(correct):
            raise ValueError(f"question {q}: {len(answers)} answers but {len(correct)} correctness flags")
        correct_B = _bool_B(f"correct_per_question[{q}]", correct)
        v = majority_vote(list(answers)[:k])
        hits += v is not None and bool(correct_B[v])
    return hits / len(answers_per_question)


# ---------------------------------------------------------------------------------------------
# Length statistics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthSummary:
    """n responses; mean, median and 90th percentile (numpy linear interpolation) of their lengths.

    All three are NaN when n = 0.
    """

    n: int
    mean: float
    median: float
    p90: float


@dataclass(frozen=True)
class LengthStats:
    """Length summaries of all responses, of the correct ones and of the incorrect ones."""

    overall: LengthSummary
    correct: LengthSummary
    incorrect: LengthSummary


def _summary(x: np.ndarray) -> LengthSummary:
    if x.size == 0:
        return LengthSummary(0, math.nan, math.nan, math.nan)
    return LengthSummary(int(x.size), float(x.mean()), float(np.median(x)), float(np.quantile(x, 0.9)))


def length_stats(len_B: object, correct_B: object) -> LengthStats:
    """Mean / median / p90 of response length, overall and split by correctness (§11.3).

    Shapes: len_B, correct_B [B] -> LengthStats of scalars. A split with no responses is NaN.
    """
    len_B, correct_B = _len_B("len_B", len_B), _bool_B("correct_B", correct_B)
    _same_nonempty(len_B=len_B, correct_B=correct_B)
    return LengthStats(_summary(len_B), _summary(len_B[correct_B]), _summary(len_B[~correct_B]))


@dataclass(frozen=True)
class SpanLengths:
    """Mean total length over all responses; mean thinking span (tokens up to and including
    `</think>`) and mean answer span (the rest) over responses whose thinking closed; the fraction
    of responses whose thinking closed. Span means are NaN when no thinking closed."""

    total_mean: float
    think_mean: float
    answer_mean: float
    closed_frac: float


def think_answer_lengths(len_B: object, think_len_B: object) -> SpanLengths:
    """Thinking vs answer span lengths (§11.3: "report thinking-only length separately when
    `</think>` exists").

    answer_len_B = len_B - think_len_B; think_len_B = 0 marks "no `</think>`" (unclosed thinking,
    usually a truncation), which is excluded from the span means rather than counted as an empty
    thinking span. (ThinkEdit instead counts unclosed thinking as the whole response; arXiv 2503.22048.)
    Shapes: len_B, think_len_B [B] -> SpanLengths of scalars.
    """
    len_B, think_B = _len_B("len_B", len_B), _len_B("think_len_B", think_len_B)
    _same_nonempty(len_B=len_B, think_len_B=think_B)
    if (think_B > len_B).any():
        raise ValueError("think_len_B must not exceed len_B")
    closed_B = think_B > 0
    if not closed_B.any():
        return SpanLengths(float(len_B.mean()), math.nan, math.nan, 0.0)
    answer_B = len_B - think_B
    return SpanLengths(
        float(len_B.mean()), float(think_B[closed_B].mean()), float(answer_B[closed_B].mean()), float(closed_B.mean())
    )


def truncation_rate(truncated_B: object) -> float:
    """Fraction of responses cut at the token cap (finish reason "length", no EOS; §12.2).

    Shapes: truncated_B [B] -> scalar.
    """
    truncated_B = _bool_B("truncated_B", truncated_B)
    _same_nonempty(truncated_B=truncated_B)
    return float(truncated_B.mean())


def tokens_per_correct(len_B: object, correct_B: object) -> float:
    """Generated tokens spent per correct answer: sum_b len_b / sum_b c_b; inf when none is correct.

    The inverse of DLER's "accuracy per token" (docs/algorithms.md §11.3). Shapes: [B], [B] -> scalar.
    """
    len_B, correct_B = _len_B("len_B", len_B), _bool_B("correct_B", correct_B)
    _same_nonempty(len_B=len_B, correct_B=correct_B)
    n_correct = int(correct_B.sum())
    return float(len_B.sum()) / n_correct if n_correct else math.inf


def shortest_fraction_accuracy(
    len_B: object, correct_B: object, fractions: Sequence[float] = (0.05, 0.10, 0.20)
) -> dict[float, float]:
    """Accuracy over the shortest q-fraction of responses (ThinkEdit, Sun et al. 2025, arXiv 2503.22048, §5).

    acc_q = mean(c_b for the m_q shortest responses), m_q = max(1, ceil(q * B)), where q * B is
    rounded to 9 decimals first so that 0.1 * 30 takes 3, not 4. Ties in length are broken by
    position (stable sort: earlier responses first). ThinkEdit reports this per run of B responses.
    Shapes: len_B, correct_B [B] -> {q: scalar}.
    """
    len_B, correct_B = _len_B("len_B", len_B), _bool_B("correct_B", correct_B)
    _same_nonempty(len_B=len_B, correct_B=correct_B)
    if len(fractions) == 0:
        raise ValueError("fractions is empty")
    order_B = np.argsort(len_B, kind="stable")
    out: dict[float, float] = {}
    for q in fractions:
        if not 0 < q <= 1:
            raise ValueError(f"fractions must lie in (0, 1], got {q}")
        m = max(1, math.ceil(round(q * len_B.size, 9)))
        out[q] = float(correct_B[order_B[:m]].mean())
    return out


# ---------------------------------------------------------------------------------------------
# Accuracy-efficiency trade-off
# ---------------------------------------------------------------------------------------------


def aes(
    acc: float,
    length: float,
    base_acc: float,
    base_length: float,
    *,
    alpha: float = 1.0,
    beta: float = 3.0,
    gamma: float = 5.0,
) -> float:
    """Accuracy-Efficiency Score of a model against its base (docs/algorithms.md §11.3, DRPO/PALU lineage).

    dL = (L_base - L) / L_base,  dA = (A - A_base) / A_base,
    AES = alpha * dL + beta * |dA|   if dA >= 0,
          alpha * dL - gamma * |dA|  otherwise,   with alpha=1, beta=3, gamma=5.
    Accuracy may be a fraction or a percentage (dA is a ratio); base_acc and base_length must be > 0.
    Scalars in, scalar out.
    """
    for name, v in (("acc", acc), ("length", length), ("base_acc", base_acc), ("base_length", base_length)):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {v}")
    if base_acc == 0 or base_length == 0:
        raise ValueError(f"base_acc and base_length must be > 0, got {base_acc} and {base_length}")
    d_len = (base_length - length) / base_length
    d_acc = (acc - base_acc) / base_acc
    return alpha * d_len + beta * abs(d_acc) if d_acc >= 0 else alpha * d_len - gamma * abs(d_acc)


def _budgets(budgets: Sequence[int]) -> np.ndarray:
    b = np.asarray(budgets)
    if b.ndim != 1 or b.size == 0:
        raise ValueError("budgets must be a non-empty 1-D sequence of integers")
    if b.dtype.kind not in "iu":
        raise ValueError(f"budgets must be integers, got {list(budgets)}")
    if (b <= 0).any() or (np.diff(b) <= 0).any():
        raise ValueError(f"budgets must be strictly increasing positive integers, got {b.tolist()}")
    return b.astype(np.int64)


def accuracy_vs_budget(len_B: object, correct_B: object, finished_B: object, budgets: Sequence[int]) -> np.ndarray:
    """Accuracy under a hard token cap b, for every b in `budgets`, from one long generation.

    acc(b) = (1/B) sum_i [finished_i and len_i <= b and c_i]: a response counts at budget b iff it
    stopped by itself (EOS / stop string) within b tokens and was graded correct; a response cut at
    b counts as wrong (strict: unlike scoring truncated text as-is, as DLER/L1 do, §11.2).
    len_i == b with EOS counts as finished (§12.2).

    Why this equals regenerating with max_tokens=b: autoregressive sampling draws token t from
    p(. | prompt, tokens < t), which does not depend on max_tokens, so the first b tokens of the long
    sample have the same law as a sample capped at b; with the same per-request seed (vLLM draws
    per-request random numbers in token order) they are the same tokens. The capped run therefore
    stops at the same EOS when len_i <= b and is cut otherwise. Up to batch-dependent kernel
    non-determinism this is exact; in distribution it is exact regardless. acc(b) is non-decreasing in b.
    Budgets past the length of an unfinished response are refused: the long run says nothing about
    what that response does beyond its own cap.
    Shapes: len_B, correct_B, finished_B [B]; budgets [K] strictly increasing -> acc [K] float64.
    """
    len_B, correct_B = _len_B("len_B", len_B), _bool_B("correct_B", correct_B)
    finished_B = _bool_B("finished_B", finished_B)
    _same_nonempty(len_B=len_B, correct_B=correct_B, finished_B=finished_B)
    b_K = _budgets(budgets)
    if (~finished_B).any():
        cap = float(len_B[~finished_B].min())
        if b_K[-1] > cap:
            raise ValueError(f"budget {int(b_K[-1])} exceeds the length {cap:g} of an unfinished response (its cap)")
    ok_B = finished_B & correct_B
    within_KB = len_B[None, :] <= b_K[:, None]  # [K, B]
    return (within_KB & ok_B[None, :]).mean(axis=1)

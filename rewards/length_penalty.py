"""Per-sample length shaping rewards (each sample scored on its own; no group statistics).

- `truncation`: DLER truncation penalty — Liu et al. (NVIDIA), "DLER: Doing Length pEnalty Right",
  arXiv 2510.15110 (docs/algorithms.md §1.1, §1.9).
- `overlong`: DAPO soft overlong punishment — Yu et al., arXiv 2503.14476 (docs/algorithms.md §9.4).
- `l1_exact`, `l1_max`: L1 / LCPO — Aggarwal & Welleck, "Controlling How Long A Reasoning Model
  Thinks", arXiv 2503.04697 (docs/algorithms.md §9.1).
- `cosine`: cosine length-scaled reward — Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in
  LLMs", arXiv 2502.03373 (docs/algorithms.md §9.3).
- `tlts_triangular`: Train Long, Think Short budget reward — Hammoud et al., arXiv 2508.08940
  (docs/algorithms.md §5.1).
- `repetition`: n-gram repetition penalty — Yeo et al., arXiv 2502.03373 (docs/algorithms.md §9.3).

Conventions: lengths are tokens (x.response_len_B; x.think_len_B with `length_on="think"`); "truncated"
is the engine's finish reason "length" (x.truncated_B); correctness c is x.correct_B, the run's grader's
verdict (decided once per sample before any reward, so every reward and the gating agree on it).
Every score is float32 of shape (B,).
"""

from __future__ import annotations

import math

import torch

from lenrl.reward import RewardInput, RewardOutput, graded, register_reward
from rewards._length import (
    LENGTH_ON,
    check_choice,
    check_min,
    check_range,
    lengths,
    targets,
)
from rewards._length import (
    reward_output as _out,
)


@register_reward("truncation")
def truncation(
    x: RewardInput,
    *,
    truncation_reward_scale: float = 0.0,
    include_correct: bool = False,
) -> RewardOutput:
    """DLER truncation penalty: a truncated response keeps only `truncation_reward_scale` of its correctness (DLER,
    arXiv 2510.15110).

    DLER's reward is R_i = c_i · (s if truncated_i else 1), s = truncation_reward_scale.
    Additive form (default, include_correct=False): R_i = -(1 - s) · c_i · 1[truncated_i], so that
    `math_correct` + `truncation` with EQUAL weights sums to DLER's R_i (both read the one x.correct_B)
    (a truncated correct answer: 1 - (1 - s) = s; a wrong one: 0; untruncated: c_i).
    include_correct=True returns R_i itself (use it instead of math_correct, not with it).
    Paper vs code: the paper gives truncated responses 0 (s = 0, the default); the official code
    multiplies the score by 0.1 when finish_reason != "stop" (s = 0.1). DLER's grader also requires
    `</think>` (`model.thinking: true`). Truncated = finish reason "length" (a response of exactly
    max_tokens that ends in EOS is not truncated, docs/algorithms.md §12.2).
    Shapes: (B,), x.correct_B (B,) -> score_B (B,).
    """
    check_range("truncation", "truncation_reward_scale", truncation_reward_scale, 0.0, 1.0)
    c = graded(x)
    cut = x.truncated_B.bool()
    penalty = torch.where(c & cut, -(1.0 - truncation_reward_scale), 0.0).double()
    score = c.double() + penalty if include_correct else penalty
    return _out(score, truncated=cut.double())


@register_reward("overlong")
def overlong(
    x: RewardInput,
    *,
    max_len: int | None = None,
    buffer: int = 4096,
    factor: float = 1.0,
    clip: bool = True,
    length_on: str = "total",
) -> RewardOutput:
    """DAPO soft overlong punishment: linear penalty inside the last `buffer` tokens before `max_len` (DAPO, arXiv
    2503.14476).

    With L = max_len (None: the sample's generation cap x.budget_B; paper 20480), C = buffer (paper
    4096), ℓ = length in tokens:
        R = 0                          if ℓ <= L - C
        R = factor · ((L - C) - ℓ) / C if L - C < ℓ <= L
        R = -factor                    if ℓ > L          (clip=True, the paper)
    clip=False is verl's `min(-(ℓ - (L - C)) / C · factor, 0)`, unbounded below past L (equal to the
    paper whenever generation is capped at L). The penalty is added to the ±1 correctness reward.
    Shapes: (B,) -> score_B (B,) float32; correctness not used.
    """
    if max_len is not None:
        check_min("overlong", "max_len", max_len, 0, strict=True)
    check_min("overlong", "buffer", buffer, 0, strict=True)
    check_min("overlong", "factor", factor, 0.0)
    check_choice("overlong", "length_on", length_on, LENGTH_ON)
    if max_len is not None and buffer > max_len:
        raise ValueError(f"overlong: buffer ({buffer}) must be <= max_len ({max_len})")
    cap = targets(x, None, "overlong", "max_len") if max_len is None else torch.full((len(x),), float(max_len))
    if bool((cap.double() < buffer).any()):
        raise ValueError(f"overlong: buffer ({buffer}) exceeds a sample's max_len {int(cap.min())} (its budget)")
    ell, cap = lengths(x, length_on), cap.double()
    r = factor * ((cap - buffer) - ell) / buffer
    r = torch.clamp(r, max=0.0)
    if clip:
        r = torch.clamp(r, min=-factor)
    return _out(r, in_buffer=((ell > cap - buffer) & (ell <= cap)).double(), over=(ell > cap).double())


@register_reward("l1_exact")
def l1_exact(
    x: RewardInput,
    *,
    alpha: float = 3e-4,
    target_key: str | None = None,
    include_correct: bool = True,
    length_on: str = "total",
) -> RewardOutput:
    """L1 / LCPO-Exact: R = 1[c] - α·abs(N - ℓ) (Aggarwal & Welleck, arXiv 2503.04697).

    N = target length: x.budget_B (target_key None) or the meta column `target_key` (the "Think for N
    tokens." number; L1 samples N ~ U{100..4000} and caps generation separately). α = 3e-4, unclipped
    (paper and code agree). ℓ = all response tokens (length_on="total", as L1).
    include_correct=False returns only -α·|N - ℓ| (c unused; compose with math_correct).
    Shapes: (B,), x.correct_B (B,) -> score_B (B,).
    """
    check_min("l1_exact", "alpha", alpha, 0.0)
    check_choice("l1_exact", "length_on", length_on, LENGTH_ON)
    n, ell = targets(x, target_key, "l1_exact", "target length"), lengths(x, length_on)
    err = (n - ell).abs()
    c = graded(x) if include_correct else None
    score = -alpha * err + (c.double() if c is not None else 0.0)
    return _out(score, target=n, length_error=err)


@register_reward("l1_max")
def l1_max(
    x: RewardInput,
    *,
    alpha: float = 3e-4,
    delta: float = 0.5,
    form: str = "paper",
    target_key: str | None = None,
    length_on: str = "total",
) -> RewardOutput:
    """L1 / LCPO-Max: R = 1[c] · clip(α·(N - ℓ) + δ, 0, 1) (Aggarwal & Welleck, arXiv 2503.04697).

    form="paper" (default): the multiplicative form above, δ = 0.5 — wrong answers get 0.
    form="code" (cmu-l3/l1 `get_delta_score_linear_both`, multiplier_reward=False): additive
        R = 1[c] + clip(α·(N - ℓ), -1, 1)/2 + 1/2   (δ unused; wrong answers still get the length term).
    N from x.budget_B or the meta column `target_key`; α = 3e-4; ℓ = response tokens.
    Shapes: (B,), x.correct_B (B,) -> score_B (B,).
    """
    check_min("l1_max", "alpha", alpha, 0.0)
    check_range("l1_max", "delta", delta, 0.0, 1.0)
    check_choice("l1_max", "form", form, ("paper", "code"))
    check_choice("l1_max", "length_on", length_on, LENGTH_ON)
    n, ell = targets(x, target_key, "l1_max", "target length"), lengths(x, length_on)
    c = graded(x)
    if form == "paper":
        term = torch.clamp(alpha * (n - ell) + delta, 0.0, 1.0)
        score = c.double() * term
    else:
        term = torch.clamp(alpha * (n - ell), -1.0, 1.0) / 2 + 0.5
        score = c.double() + term
    return _out(score, target=n, length_term=term)


@register_reward("cosine")
def cosine(
    x: RewardInput,
    *,
    max_len: int | None = None,
    r0_correct: float = 2.0,
    rT_correct: float = 1.0,
    r0_wrong: float = -10.0,
    rT_wrong: float = 0.0,
    r_exceed: float = -10.0,
    exceed_margin: int = 16,
    length_on: str = "total",
) -> RewardOutput:
    """Cosine length-scaled reward: correct 2 -> 1, wrong -10 -> 0 over [0, T], -10 past the cap (Yeo et al., arXiv
    2502.03373).

    CosFn(t; r_0, r_T) = r_T + ½·(r_0 - r_T)·(1 + cos(π·t/T)), t = length in tokens, T = max_len
    (None: the sample's generation cap x.budget_B; the paper's launcher uses 14336).
        R = r_exceed                       if t + exceed_margin >= T   (code's MAX_LEN_MARGIN = 16)
        R = CosFn(t; r0_correct, rT_correct) if correct   (shorter correct is better)
        R = CosFn(t; r0_wrong, rT_wrong)     if wrong     (longer wrong is punished less)
    Paper and code agree on these values. The code's optional repetition penalty on wrong answers is
    the separate `repetition` reward (only_wrong=True, mode="fraction" reproduces it).
    Shapes: (B,), x.correct_B (B,) -> score_B (B,).
    """
    if max_len is not None:
        check_min("cosine", "max_len", max_len, 0, strict=True)
    check_min("cosine", "exceed_margin", exceed_margin, 0)
    check_choice("cosine", "length_on", length_on, LENGTH_ON)
    cap = targets(x, None, "cosine", "max_len") if max_len is None else torch.full((len(x),), float(max_len))
    t = lengths(x, length_on)
    c = graded(x)
    cf = c.double()
    r0 = cf * r0_correct + (1.0 - cf) * r0_wrong
    rT = cf * rT_correct + (1.0 - cf) * rT_wrong
    progress = torch.clamp(t / cap.double(), max=1.0)
    r = rT + 0.5 * (r0 - rT) * (1.0 + torch.cos(math.pi * progress))
    exceed = t + exceed_margin >= cap.double()
    r = torch.where(exceed, torch.full_like(r, r_exceed), r)
    return _out(r, exceed=exceed.double())


@register_reward("tlts_triangular")
def tlts_triangular(
    x: RewardInput,
    *,
    r_max: float = 1.0,
    shape: str = "triangular",
    budget_key: str | None = None,
    length_on: str = "total",
) -> RewardOutput:
    """Train Long, Think Short triangular budget reward, peak R_max at ℓ = L (Hammoud et al., arXiv 2508.08940).

    L = the current budget B(t): x.budget_B (budget_key None) or the meta column `budget_key` (use the
    column when the generation cap is larger than the prompt's budget, e.g. 2L, or the decay never shows).
        shape="triangular": R = R_max·ℓ/L (0 <= ℓ <= L); R_max·(1 - (ℓ - L)/L) (L < ℓ <= 2L); 0 (ℓ > 2L)
        shape="band" (the paper's flat-then-decay ablation): R_max for ℓ <= L, then the same decay.
    The full TLTS reward is λ_c·math_correct + λ_ℓ·tlts_triangular + λ_f·format (λ_c=0.6, λ_ℓ=0.3 or
    0.3/0.6). R_max is not given in the paper (1.0 here). The paper's text counts the response
    (length_on="total", default), its Figure 1 the thinking trace (length_on="think").
    Shapes: (B,) -> score_B (B,) float32; correctness not used.
    """
    check_min("tlts_triangular", "r_max", r_max, 0.0)
    check_choice("tlts_triangular", "shape", shape, ("triangular", "band"))
    check_choice("tlts_triangular", "length_on", length_on, LENGTH_ON)
    budget, ell = targets(x, budget_key, "tlts_triangular", "budget"), lengths(x, length_on)
    rise = ell / budget if shape == "triangular" else torch.ones_like(ell)
    decay = torch.clamp(1.0 - (ell - budget) / budget, min=0.0)
    score = r_max * torch.where(ell <= budget, rise, decay)
    return _out(score, budget=budget)


def _repeats(ids: list[int], n: int) -> tuple[int, int, int]:
    """(number of n-grams, number of distinct n-grams, positions covered by a repeated n-gram)."""
    seen: set[tuple[int, ...]] = set()
    covered: set[int] = set()
    total = max(len(ids) - n + 1, 0)
    for i in range(total):
        ng = tuple(ids[i : i + n])
        if ng in seen:
            covered.update(range(i, i + n))
        seen.add(ng)
    return total, len(seen), len(covered)


@register_reward("repetition")
def repetition(
    x: RewardInput,
    *,
    ngram_size: int = 40,
    penalty: float = 0.05,
    mode: str = "dense",
    only_wrong: bool = True,
) -> RewardOutput:
    """N-gram repetition penalty over completion token ids, 40-grams, -0.05 each (Yeo et al., arXiv 2502.03373).

    An n-gram (over x.completion_ids, never words or characters) is repeated when it occurred earlier.
        mode="dense" (paper; code `RepetitionDensePenalty`, only_start=False): every token covered by a
            repeated n-gram gets -penalty; as a sequence reward, the sum: R = -penalty·|covered tokens|.
        mode="count": R = -penalty·(number of repeated n-gram occurrences).
        mode="fraction" (code `get_repetition_penalty`, the sparse variant inside cosine.py, there on
            lower-cased words): R = -penalty·(1 - distinct / total n-grams), in [-penalty, 0].
    only_wrong=True (docs/algorithms.md §9.3: "only on wrong answers", as in the cosine code) leaves
    correct answers (x.correct_B) at 0; only_wrong=False penalises every sample (the dense code's behaviour).
    Shapes: (B,), x.correct_B (B,) -> score_B (B,).
    """
    if not isinstance(ngram_size, int) or ngram_size < 1:
        raise ValueError(f"repetition: ngram_size must be an integer >= 1, got {ngram_size!r}")
    check_min("repetition", "penalty", penalty, 0.0)
    check_choice("repetition", "mode", mode, ("dense", "count", "fraction"))
    stats = [_repeats(list(ids), int(ngram_size)) for ids in x.completion_ids]
    if mode == "dense":
        raw = [float(cov) for _, _, cov in stats]
    elif mode == "count":
        raw = [float(tot - dist) for tot, dist, _ in stats]
    else:
        raw = [1.0 - dist / tot if tot else 0.0 for tot, dist, _ in stats]
    r = -penalty * torch.tensor(raw, dtype=torch.float64)
    c = graded(x) if only_wrong else None
    if c is not None:
        r = torch.where(c, torch.zeros_like(r), r)
    repeated = torch.tensor([float(tot - dist) for tot, dist, _ in stats], dtype=torch.float64)
    return _out(r, repeated_ngrams=repeated)

"""Group-relative length rewards: each score depends on the other responses to the same prompt.

- `kimi`: Kimi k1.5 length reward — Kimi Team, "Kimi k1.5: Scaling Reinforcement Learning with LLMs",
  arXiv 2501.12599 (docs/algorithms.md §9.2; also GRPO-λ, arXiv 2505.18086).
- `shorter_better`: ShorterBetter — Yi et al., arXiv 2504.21370 (docs/algorithms.md §9.7).
- `arora_zanette`: "Training Language Models to Reason Efficiently" — Arora & Zanette, arXiv 2502.04463
  (docs/algorithms.md §9.8).
- `surrogate`: Surrogate Signals from Format and Length — Xin et al., arXiv 2505.19439 (docs/algorithms.md
  §6.1). Not group-relative (per sample, against a fixed L_max); it lives here as a "no ground truth"
  composite of format and length.

A group is the set of samples sharing x.group_id_B (the G responses to one prompt); the runner keeps
groups whole inside a chunk. Lengths are tokens (x.response_len_B; x.think_len_B with
`length_on="think"`); correctness c is x.correct_B, the run's grader's verdict (decided once per sample).
Every score is float32 of shape (B,).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lenrl.reward import RewardInput, RewardOutput, graded, register_reward
from rewards._length import (
    LENGTH_ON,
    check_choice,
    check_min,
    check_range,
    group_stat,
    lengths,
    targets,
)
from rewards._length import (
    reward_output as _out,
)
from rewards.format import answer_parsable, sympy_valid, tag_well_formed
from rewards.math_correct import FALLBACKS


@register_reward("kimi")
def kimi(
    x: RewardInput,
    *,
    include_correct: bool = False,
    length_on: str = "total",
) -> RewardOutput:
    """Kimi k1.5 length reward: λ = 0.5 - (ℓ - min)/(max - min) in the group; correct +λ, wrong min(0, λ) (arXiv
    2501.12599).

    min/max over ALL responses of the group (correct or not); λ = 0 for every member when max == min
    (also a group of one). λ ∈ [-0.5, 0.5]: the shortest gets +0.5, the longest -0.5.
        R_len = λ if correct else min(0, λ)
    The report adds R_len to the correctness reward (compose with math_correct), after a warm-up without
    it; include_correct=True returns 1[c] + R_len. [The formula is from memory of the report,
    docs/algorithms.md §9.2.] Shapes: (B,), group_id_B (B,), x.correct_B (B,) -> score_B (B,).
    """
    check_choice("kimi", "length_on", length_on, LENGTH_ON)
    ell = lengths(x, length_on)
    lo, hi = group_stat(ell, x.group_id_B, "amin"), group_stat(ell, x.group_id_B, "amax")
    span = hi - lo
    lam = torch.where(span > 0, 0.5 - (ell - lo) / torch.where(span > 0, span, 1.0), 0.0)
    c = graded(x)
    r = torch.where(c, lam, torch.clamp(lam, max=0.0))
    if include_correct:
        r = r + c.double()
    return _out(r, lam=lam)


@register_reward("shorter_better")
def shorter_better(
    x: RewardInput,
    *,
    correct_reward: float = 2.0,
    alpha: float = 0.001,
    length_on: str = "total",
) -> RewardOutput:
    """ShorterBetter: R = 2·1[c] - α·abs(ℓ - SOL), SOL = shortest correct length in the group, else its mean length (Yi
    et al., arXiv 2504.21370).

    SOL (Sample Optimal Length) = min ℓ over the group's correct responses; when none is correct, the
    mean ℓ of the whole group. correct_reward = 2.0 and alpha = 0.001 (the paper's α and β:
    R = α·1[c] - β·|ℓ - SOL|; named here as the other length rewards name their length coefficient).
    ℓ = valid response tokens (length_on="total", as the official code).
    Shapes: (B,), group_id_B (B,), x.correct_B (B,) -> score_B (B,).
    """
    check_min("shorter_better", "correct_reward", correct_reward, 0.0)
    check_min("shorter_better", "alpha", alpha, 0.0)
    check_choice("shorter_better", "length_on", length_on, LENGTH_ON)
    ell = lengths(x, length_on)
    c = graded(x)
    shortest = group_stat(ell, x.group_id_B, "amin", c)
    sol = torch.where(torch.isnan(shortest), group_stat(ell, x.group_id_B, "mean"), shortest)
    r = correct_reward * c.double() - alpha * (ell - sol).abs()
    return _out(r, sol=sol)


@register_reward("arora_zanette")
def arora_zanette(
    x: RewardInput,
    *,
    alpha: float = 0.1,
    check_eos: bool = True,
    length_on: str = "total",
) -> RewardOutput:
    """Arora & Zanette: R = 1 - α·sigmoid((ℓ - mean)/(std + 1e-7)) over the group's correct responses if correct,
    else 0 (arXiv 2502.04463).

    mean/std (population, ddof=0) of ℓ over the CORRECT responses of the same group; a lone correct
    response has z = 0, so R = 1 - α/2. α ∈ [0, 1] (paper sweeps 0.05–0.4; script default 0.1); α <= 1
    keeps every correct answer at >= 0, i.e. never below a wrong one. check_eos=True (code's
    --check_eos): a truncated response (finish reason "length") counts as wrong, in the score and in
    the group statistics. Paper and code agree; the code re-tokenises the decoded text, here ℓ is the
    generated token count (docs/algorithms.md §12.1).
    Shapes: (B,), group_id_B (B,) -> score_B (B,); x.correct_B is c before the EOS check.
    """
    check_range("arora_zanette", "alpha", alpha, 0.0, 1.0)
    check_choice("arora_zanette", "length_on", length_on, LENGTH_ON)
    ell = lengths(x, length_on)
    c = graded(x)
    ok = c & ~x.truncated_B.bool() if check_eos else c
    mean = group_stat(ell, x.group_id_B, "mean", ok)
    std = group_stat(ell, x.group_id_B, "std", ok)
    z = torch.where(ok, (ell - mean) / (std + 1e-7), 0.0)
    r = torch.where(ok, 1.0 - alpha * torch.sigmoid(z), 0.0)
    return _out(r, z=z)


def surrogate_length(x_B: torch.Tensor, p: float, shape: str) -> torch.Tensor:
    """Surrogate Signals' length bump R_l(x), x = ℓ/L_max clamped to [0, 1]: 0 at x=0, 1 at x=p, -1 at x=1."""
    x_B = torch.clamp(x_B, 0.0, 1.0)
    if shape == "concave":
        up = 1.0 - (1.0 - x_B / p) ** 2
        down = 1.0 - 2.0 * ((x_B - p) / (1.0 - p)) ** 2
    else:  # polyline: 2x then 3 - 4x at p = 0.5
        up = x_B / p
        down = 1.0 - 2.0 * (x_B - p) / (1.0 - p)
    return up if p >= 1.0 else torch.where(x_B <= p, up, down)


@register_reward("surrogate")
def surrogate(
    x: RewardInput,
    *,
    max_len: int | None = None,
    p: float = 0.5,
    shape: str = "concave",
    format_weight: float = 1.0,
    soft_format: bool = False,
    fallback: str = "none",
) -> RewardOutput:
    """Surrogate Signals format-length reward, no ground truth: R_f + concave bump peaking at ℓ = p·L_max (Xin et
    al., arXiv 2505.19439).

    x = ℓ/L_max (ℓ = response tokens incl. EOS; L_max = max_len, None: the sample's generation cap
    x.budget_B; paper 3072), clamped to [0, 1] (the official code does not clamp past L_max);
    p ∈ (0, 1] (paper 0.5; 0.8 was best; p = 1 rewards running to the cap).
        R_l = 1 - (1 - x/p)²              for 0 <= x <= p     (shape="concave", eq. 2)
        R_l = 1 - 2·((x - p)/(1 - p))²    for p < x <= 1      (0 at x=0, 1 at x=p, -1 at x=1)
        shape="polyline": x/p, then 1 - 2(x - p)/(1 - p)  (the ablation's 2x / 3 - 4x at p = 0.5)
    R_f = 1 iff a final answer is extracted (the math grader's rule, `fallback`, in the answer span of
    the run's thinking mode x.thinking) and parses to SymPy within format.SYMPY_PARSE_TIMEOUT_S (else 0).
        R = w·(R_f + S) + R_l  if R_f = 1,   else min(0, R_l)   (eq. 5: bad format only punishes)
    Paper vs code: the paper uses w = format_weight = 1 and no S; the code (`RewardMathFn_xrh`) uses
    w = 0.5 and S = soft_format = 1[<think>…</think> well-formed] (format_weight=0.5, soft_format=True).
    Shapes: (B,) -> score_B (B,) float32; no ground truth (x.correct_B unused).
    """
    if max_len is not None:
        check_min("surrogate", "max_len", max_len, 0, strict=True)
    if not (isinstance(p, (int, float)) and 0.0 < p <= 1.0):
        raise ValueError(f"surrogate: p must be in (0, 1], got {p!r}")
    check_choice("surrogate", "shape", shape, ("concave", "polyline"))
    check_min("surrogate", "format_weight", format_weight, 0.0)
    check_choice("surrogate", "fallback", fallback, FALLBACKS)
    cap = targets(x, None, "surrogate", "max_len") if max_len is None else torch.full((len(x),), float(max_len))
    r_len = surrogate_length(lengths(x, "total") / cap.double(), float(p), shape)
    fmt, soft = [], []
    for text, prompt in zip(x.completions, x.prompts, strict=True):
        pred = answer_parsable(text, fallback, x.thinking)
        fmt.append(float(pred is not None and sympy_valid(pred)))
        soft.append(float(soft_format and tag_well_formed(text, prompt, "think")))
    r_f, s = torch.tensor(fmt, dtype=torch.float64), torch.tensor(soft, dtype=torch.float64)
    r = torch.where(r_f > 0, format_weight * (r_f + s) + r_len, torch.clamp(r_len, max=0.0))
    return _out(r, format=r_f, length=r_len)


@register_reward("difficulty_truncation")
def difficulty_truncation(
    x: RewardInput,
    *,
    thresholds: Sequence[float] = (0.5,),
    cap_fractions: Sequence[float] = (0.5,),
    truncation_reward_scale: float = 0.0,
) -> RewardOutput:
    """Difficulty-aware DLER: a per-prompt truncation tier chosen from the group's correctness ratio
    (DA-DLER, arXiv 2510.15110, §3.4; not in the public code).

    p_g = mean_{i in g} c_i, measured at the full generation cap (the rollout budget). The tier is the
    highest k with p_g >= thresholds[k]; its cap is cap_fractions[k] · budget (paper: p >= 0.5 -> 2000 of
    4000, i.e. 0.5); a prompt below every threshold keeps the full budget. A correct response that
    finished but is longer than its tier's cap keeps only truncation_reward_scale of its reward:
        R_i = -(1 - s) · c_i · 1[ℓ_i > cap_g and not truncated_i]
    (additive, to compose with math_correct + truncation: a response already cut at the budget is
    penalised once, by `truncation`). Shapes: (B,), group_id_B (B,), x.correct_B (B,) -> score_B (B,).
    """
    thresholds, cap_fractions = list(thresholds), list(cap_fractions)
    if len(thresholds) != len(cap_fractions) or not thresholds:
        raise ValueError("difficulty_truncation: thresholds and cap_fractions need the same, non-zero length")
    if thresholds != sorted(thresholds) or not all(0 <= t <= 1 for t in thresholds):
        raise ValueError(f"difficulty_truncation: thresholds must be ascending in [0, 1], got {thresholds}")
    if not all(0 < f <= 1 for f in cap_fractions):
        raise ValueError(f"difficulty_truncation: cap_fractions must be in (0, 1], got {cap_fractions}")
    check_range("difficulty_truncation", "truncation_reward_scale", truncation_reward_scale, 0.0, 1.0)
    c = graded(x)
    p = group_stat(c.double(), x.group_id_B, "mean")
    frac = torch.ones_like(p)
    for t, f in zip(thresholds, cap_fractions, strict=False):  # ascending: the last threshold met wins
        frac = torch.where(p >= t, torch.full_like(p, f), frac)
    cap = frac * x.budget_B.double()
    over = (x.response_len_B.double() > cap) & ~x.truncated_B.bool()
    r = torch.where(c & over, -(1.0 - truncation_reward_scale), 0.0).double()
    return _out(r, tier_cap=cap, over_tier=over.double())

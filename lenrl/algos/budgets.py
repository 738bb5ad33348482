"""Token-budget schedules B(t): the response cap in force at step t.

Signature: `fn(*, step, total_steps, max_tokens, <params>) -> int`, with step counted from 0 and
max_tokens = rollout.max_tokens = B_0. The budget is a real cap: every rollout of the step is requested
with max_tokens = B(t), so generation stops there (which is where the savings come from), and length
rewards read the same value from `RewardInput.budget_B`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from lenrl.registry import Registry

if TYPE_CHECKING:
    from lenrl.config import Config

BUDGET_SCHEDULES = Registry("budget schedule", runtime=("step", "total_steps", "max_tokens"))


def budget_at(cfg: Config, schedule: Callable[..., int], step: int) -> int:
    """The response budget B(t) in force at training step `step` (1-based; schedules count from 0)."""
    return schedule(step=step - 1, total_steps=cfg.train.steps, max_tokens=cfg.rollout.max_tokens)


def _tokens(x: float) -> int:
    """The one rounding rule of every schedule: nearest integer (half to even, Python's `round`), >= 1."""
    return max(1, round(x))


@BUDGET_SCHEDULES.register("constant")
def constant(*, step: int, total_steps: int, max_tokens: int) -> int:
    """B(t) = B_0 = rollout.max_tokens."""
    return max_tokens


def _stage(step: int, total_steps: int, decays: int) -> int:
    """k = min(n, floor(t / I)) with I = T_total / (n + 1): n equal-length decays after the first stage."""
    if decays < 1:
        raise ValueError(f"budget schedule: decays must be >= 1, got {decays}")
    return min(decays, int(step // (total_steps / (decays + 1))))


@BUDGET_SCHEDULES.register("exponential")
def exponential(*, step: int, total_steps: int, max_tokens: int, end: int, decays: int = 3) -> int:
    """Step-wise exponential curriculum (Train Long, Think Short; Hammoud et al., arXiv 2508.08940, §3.2).

    S_k = S_0 d^k with d = (S_f / S_0)^(1/n), S_0 = max_tokens, S_f = end, n = decays, and stage
    k = min(n, floor(t / I)), I = T_total / (n + 1). Paper: 256 -> 87 over 600 steps, n = 3
    (256, 179, 125, 87). Returns an int >= 1.
    """
    if end <= 0:
        raise ValueError(f"exponential budget: end must be > 0, got {end}")
    k = _stage(step, total_steps, decays)
    return _tokens(max_tokens * (end / max_tokens) ** (k / decays))


@BUDGET_SCHEDULES.register("linear")
def linear(*, step: int, total_steps: int, max_tokens: int, end: int, decays: int = 3) -> int:
    """Step-wise linear curriculum (same paper; its best average accuracy): S_k = S_0 + k (S_f - S_0) / n
    with the same stages as `exponential`. Returns an int >= 1."""
    if end <= 0:
        raise ValueError(f"linear budget: end must be > 0, got {end}")
    return _tokens(max_tokens + _stage(step, total_steps, decays) * (end - max_tokens) / decays)


@BUDGET_SCHEDULES.register("step_decay")
def step_decay(*, step: int, total_steps: int, max_tokens: int, gamma: float, every: int) -> int:
    """B(t) = max(1, round(B_0 gamma^floor(t / T))) with T = every (Train Long, Think Short, §3.2, general
    form); rounded to the nearest token like `exponential` and `linear`."""
    if not 0 < gamma <= 1 or every <= 0:
        raise ValueError(f"step_decay budget: need 0 < gamma <= 1 and every > 0, got {gamma}, {every}")
    return _tokens(max_tokens * gamma ** (step // every))


# ---------------------------------------------------------------- per-question budgets
# Signature: `fn(*, budget, correct_B, len_B, max_tokens, <params>) -> int`: the question's next budget L_q
# from its current one and the correctness / token lengths of the rollouts just sampled under it.
# The trainer keeps L_q per question id (lenrl/trainer/question_budgets.py); a prompt's cap is min(B(t), L_q).

QUESTION_BUDGETS = Registry("per-question budget rule", runtime=("budget", "correct_B", "len_B", "max_tokens"))


@QUESTION_BUDGETS.register("none")
def no_question_budget(*, budget: int, correct_B: torch.Tensor, len_B: torch.Tensor, max_tokens: int) -> int:
    """No per-question state: L_q = L_max = rollout.max_tokens, so the cap is the schedule's B(t)."""
    return max_tokens


@QUESTION_BUDGETS.register("palu")
def palu(
    *,
    budget: int,
    correct_B: torch.Tensor,
    len_B: torch.Tensor,
    max_tokens: int,
    threshold: float = 0.8,
    tau: float = 0.5,
    min_budget: int = 1,
) -> int:
    """PALU, Performance-Aware Length Updating (Gao et al., arXiv 2510.10168, §4; docs/algorithms.md §4.2).

    R̂_q = mean(c) over the question's rollouts (the off-policy pass rate of its last visit);
      R̂_q >= C (λ = 0):  L_q <- max(min_budget, L_q - round(α)),  α = Q_1.0 - Q_{1-τ} of the correct
                           responses' lengths (torch.quantile, linear), ≈ cutting a fraction τ of them;
      R̂_q <  C (λ → ∞):  L_q <- L_max = rollout.max_tokens (accuracy recovery).
    C = `threshold` (paper 0.8), τ = `tau` (paper 0.5). τ = 0 gives α = 0: the budget never shrinks.
    Shapes: correct_B bool [G], len_B [G] -> int.
    """
    if not 0 < threshold <= 1 or not 0 <= tau <= 1 or min_budget < 1:
        raise ValueError(
            f"palu: need 0 < threshold <= 1, 0 <= tau <= 1, min_budget >= 1; got {threshold}, {tau}, {min_budget}"
        )
    correct_B = correct_B.bool()
    if correct_B.numel() == 0 or float(correct_B.double().mean()) < threshold:
        return max_tokens
    ell = len_B[correct_B].double()
    alpha = float(ell.max() - torch.quantile(ell, 1.0 - tau))
    return max(min_budget, budget - round(alpha))

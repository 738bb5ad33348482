"""Token-budget schedules B(t): the response cap in force at step t.

Signature: `fn(*, step, total_steps, max_tokens, <params>) -> int`, with step counted from 0 and
max_tokens = rollout.max_tokens = B_0. The budget is a real cap: every rollout of the step is requested
with max_tokens = B(t), so generation stops there (which is where the savings come from), and length
rewards read the same value from `RewardInput.budget_B`.
"""

from __future__ import annotations

import math

from lenrl.registry import Registry

BUDGET_SCHEDULES = Registry("budget schedule", runtime=("step", "total_steps", "max_tokens"))


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
    return max(1, round(max_tokens * (end / max_tokens) ** (k / decays)))


@BUDGET_SCHEDULES.register("linear")
def linear(*, step: int, total_steps: int, max_tokens: int, end: int, decays: int = 3) -> int:
    """Step-wise linear curriculum (same paper; its best average accuracy): S_k = S_0 + k (S_f - S_0) / n
    with the same stages as `exponential`. Returns an int >= 1."""
    if end <= 0:
        raise ValueError(f"linear budget: end must be > 0, got {end}")
    return max(1, round(max_tokens + _stage(step, total_steps, decays) * (end - max_tokens) / decays))


@BUDGET_SCHEDULES.register("step_decay")
def step_decay(*, step: int, total_steps: int, max_tokens: int, gamma: float, every: int) -> int:
    """B(t) = max(1, B_0 gamma^floor(t / T)) with T = every (Train Long, Think Short, §3.2, general form)."""
    if not 0 < gamma <= 1 or every <= 0:
        raise ValueError(f"step_decay budget: need 0 < gamma <= 1 and every > 0, got {gamma}, {every}")
    return max(1, math.floor(max_tokens * gamma ** (step // every)))

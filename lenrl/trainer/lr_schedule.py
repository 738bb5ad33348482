"""Learning-rate schedules: the factor that multiplies `train.lr` at a training step.

A pure function of the step, so a resumed run needs no scheduler state: the step in its checkpoint sets
the rate (the checkpoint records it too, `trainer_state.json`). One factor per RL step: every optimizer
step of that update (train.mini_batches, train.epochs) uses it.
"""

from __future__ import annotations

import math

from lenrl.config import LR_SCHEDULES


def lr_factor(step: int, *, total_steps: int, schedule: str, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """Factor at 1-based `step` of `total_steps`:
    warm-up (step <= W):  step / W                          (linear from lr/W up to lr)
    then, with p = (step - W) / max(1, T - W) in (0, 1]:
      constant: 1;   linear: 1 - (1 - m) p;   cosine: m + (1 - m)(1 + cos(pi p)) / 2
    W = warmup_steps, T = total_steps, m = min_ratio (the floor the decays reach at the last step)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if step <= warmup_steps:
        return step / warmup_steps
    if schedule == "constant":
        return 1.0
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - (1.0 - min_ratio) * p
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))

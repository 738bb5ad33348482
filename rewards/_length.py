"""Shared helpers for the length-shaping rewards (`length_penalty.py`, `length_group.py`, `format.py`).

Nothing here is registered. Lengths are always token counts from the batch tensors (never characters,
docs/algorithms.md §12.1); correctness is never re-graded here: every length reward reads x.correct_B (via
`lenrl.reward.graded`), the verdict of the run's grader, so all rewards and the gating agree on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lenrl.reward import RewardInput, RewardOutput

LENGTH_ON = ("total", "think")


def check_choice(reward: str, name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{reward}: {name} must be one of {tuple(choices)}, got {value!r}")


def check_min(reward: str, name: str, value: float, low: float, *, strict: bool = False) -> None:
    """Raise unless value >= low (value > low with `strict`); NaN and inf are always rejected."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{reward}: {name} must be {'>' if strict else '>='} {low:g}, got {value!r}")


def check_range(reward: str, name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and low <= value <= high):
        raise ValueError(f"{reward}: {name} must be in [{low:g}, {high:g}], got {value!r}")


def lengths(x: RewardInput, length_on: str) -> torch.Tensor:
    """Token lengths (B,) float64. "total": every response token (x.response_len_B). "think": tokens up
    to and including `</think>` (x.think_len_B); a response without `</think>` (think_len 0, e.g. cut
    off while thinking) counts all its tokens, so an unfinished thought never looks short."""
    total = x.response_len_B.double()
    if length_on == "total":
        return total
    think = x.think_len_B.double()
    return torch.where(think > 0, think, total)


def targets(x: RewardInput, key: str | None, reward: str, what: str) -> torch.Tensor:
    """Per-sample target length (B,) float64: x.budget_B (key None) or the meta column `key`; > 0."""
    if key is None:
        t = x.budget_B.double()
    else:
        missing = [i for i, m in enumerate(x.meta) if key not in m]
        if missing:
            raise ValueError(f"{reward}: meta column {key!r} ({what}) missing in sample {missing[0]}")
        t = torch.tensor([float(m[key]) for m in x.meta], dtype=torch.float64)
    bad = ~(t > 0) | ~torch.isfinite(t)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        src = "budget_B" if key is None else f"meta[{key!r}]"
        raise ValueError(f"{reward}: {what} ({src}) must be > 0, got {t[i].item():g} in sample {i}")
    return t


def group_stat(
    v_B: torch.Tensor, group_id_B: torch.Tensor, reduce: str, mask_B: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample value of `reduce` ("amin", "amax", "mean", "std" (population), "count") of `v_B` over
    the sample's group, restricted to `mask_B` where given. Groups with no masked member give NaN
    (0 for "count"). Shapes: v_B, group_id_B, mask_B (B,) -> (B,) float64."""
    v = v_B.double()
    mask = torch.ones_like(v, dtype=torch.bool) if mask_B is None else mask_B.bool()
    _, inv = torch.unique(group_id_B, return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    count = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv, mask.double())
    if reduce == "count":
        return count[inv]
    if reduce in ("amin", "amax"):
        fill = math.inf if reduce == "amin" else -math.inf
        src = torch.where(mask, v, torch.full_like(v, fill))
        out = torch.full((n_groups,), fill, dtype=torch.float64).scatter_reduce(0, inv, src, reduce)
    else:
        s = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv, torch.where(mask, v, 0.0))
        out = s / count
        if reduce == "std":
            dev = torch.where(mask, v - out[inv], 0.0)
            out = (torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv, dev * dev) / count).sqrt()
    out = torch.where(count > 0, out, torch.full_like(out, math.nan))
    return out[inv]


def reward_output(score: torch.Tensor, **parts: torch.Tensor) -> RewardOutput:
    """float32 score and parts, as the runner expects."""
    return RewardOutput(score_B=score.float(), parts={k: v.float() for k, v in parts.items()})

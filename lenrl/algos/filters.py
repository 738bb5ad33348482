"""Group filters: which prompt groups of a rollout batch carry learning signal.

Signature: `fn(x: FilterInput, *, <params>) -> keep_B` (bool, constant within each group).
The loop's dynamic sampling (DAPO, arXiv 2503.14476, §3.2; DLER §1.4) keeps drawing generation
batches until enough groups pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenrl.algos.advantages import group_stats
from lenrl.registry import Registry

GROUP_FILTERS = Registry("group filter")


@dataclass(frozen=True)
class FilterInput:
    """score_B: shaped reward; correct_B: verifier outcome before any length shaping (bool);
    group_id_B: long."""

    score_B: torch.Tensor
    correct_B: torch.Tensor
    group_id_B: torch.Tensor


@GROUP_FILTERS.register("none")
def keep_all(x: FilterInput) -> torch.Tensor:
    """Keep every group. Shapes: [B] -> keep_B [B]."""
    return torch.ones_like(x.group_id_B, dtype=torch.bool)


@GROUP_FILTERS.register("nonzero_std")
def nonzero_std(x: FilterInput, *, by: str = "correct") -> torch.Tensor:
    """Keep a group iff its values are not all equal: std_G(v) > 0 (DAPO dynamic sampling).

    `by="correct"` filters on the pre-shaping correctness, as DLER's official code does (its filter reads
    `token_level_scores`, the score before the truncation penalty: algorithms.md §1.4, §12.5), so a group
    whose correct answers were all zeroed by a length cap still counts as informative.
    `by="score"` filters on the shaped reward. Shapes: [B] -> keep_B [B].
    """
    if by not in ("correct", "score"):
        raise ValueError(f"nonzero_std: by must be 'correct' or 'score', got {by!r}")
    v_B = x.correct_B.double() if by == "correct" else x.score_B.double()
    _, std_B, _ = group_stats(v_B, x.group_id_B)
    return std_B > 0

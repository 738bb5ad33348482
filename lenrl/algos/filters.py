"""Group filters: which prompt groups of a rollout batch carry learning signal.

Signature: `fn(x: FilterInput, *, <params>) -> keep_B` (bool, constant within each group).
Two uses: dynamic sampling (below), and a reward's `groups:` selector, which applies that reward only to
the kept groups (GRPO-λ).
The loop's dynamic sampling (DAPO, arXiv 2503.14476, §3.2; DLER §1.4) keeps drawing generation
batches until enough groups pass.
"""

from __future__ import annotations

import math
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
    `token_level_scores`, the score before the truncation penalty: docs/algorithms.md §1.4, §12.5), so a group
    whose correct answers were all zeroed by a length cap still counts as informative.
    `by="score"` filters on the shaped reward. Shapes: [B] -> keep_B [B].
    """
    if by not in ("correct", "score"):
        raise ValueError(f"nonzero_std: by must be 'correct' or 'score', got {by!r}")
    v_B = x.correct_B.double() if by == "correct" else x.score_B.double()
    _, std_B, _ = group_stats(v_B, x.group_id_B)
    return std_B > 0


def _group_ratio(x: FilterInput) -> tuple[torch.Tensor, torch.Tensor]:
    """Correctness ratio p_G of each group, groups in increasing id order, and each sample's group index."""
    _, inv_B = torch.unique(x.group_id_B, return_inverse=True)
    n_G = int(inv_B.max()) + 1 if inv_B.numel() else 0
    hit_G = torch.zeros(n_G, dtype=torch.float64).index_add_(0, inv_B, x.correct_B.double())
    count_G = torch.zeros(n_G, dtype=torch.float64).index_add_(0, inv_B, torch.ones_like(hit_G[inv_B]))
    return hit_G / count_G, inv_B


@GROUP_FILTERS.register("top_fraction")
def top_fraction(x: FilterInput, *, fraction: float) -> torch.Tensor:
    """GRPO-λ group selection (Dai, Liu, Si 2025, arXiv 2505.18086; docs/algorithms.md §3): keep the
    k = ceil(λ·G) groups of the batch with the highest correctness ratio p_q = (1/|q|) Σ_i c_i.

    λ = `fraction` ∈ [0, 1]. Ties at the cut go to the lower group id, i.e. the group sampled first (the
    paper does not say; this keeps it deterministic). Used as a reward's `groups:` selector, the length
    reward applies to those groups only and the rest keep the plain 0/1 reward. Shapes: [B] -> keep_B [B].
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"top_fraction: fraction must be in [0, 1], got {fraction}")
    p_G, inv_B = _group_ratio(x)
    k = math.ceil(round(fraction * len(p_G), 9))
    order_G = torch.sort(-p_G, stable=True).indices  # stable: the lower group id wins a tie
    keep_G = torch.zeros(len(p_G), dtype=torch.bool)
    keep_G[order_G[:k]] = True
    return keep_G[inv_B]


@GROUP_FILTERS.register("min_ratio")
def min_ratio(x: FilterInput, *, threshold: float) -> torch.Tensor:
    """GRPO-λ's absolute-threshold reading (docs/algorithms.md §3: summaries are ambiguous between a batch
    quantile and a threshold): keep every group with correctness ratio p_q >= `threshold` ∈ [0, 1].
    Shapes: [B] -> keep_B [B]."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"min_ratio: threshold must be in [0, 1], got {threshold}")
    p_G, inv_B = _group_ratio(x)
    return (p_G >= threshold)[inv_B]

"""Advantage estimators: one scalar per response, broadcast to its tokens by the loss.

Signature of every entry: `fn(x: AdvantageInput, *, <params>) -> adv_B`.
Groups are the G responses sampled for one prompt; `group_id_B` says which group a response is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenrl.registry import Registry

ADVANTAGES = Registry("advantage estimator")


@dataclass(frozen=True)
class AdvantageInput:
    """rewards_B float; group_id_B long; response_len_B long (tokens); truncated_B bool."""

    rewards_B: torch.Tensor
    group_id_B: torch.Tensor
    response_len_B: torch.Tensor
    truncated_B: torch.Tensor


def group_stats(x_B: torch.Tensor, group_id_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-response (group mean, unbiased group std, group size), each broadcast back to shape [B].

    A group of one has std 0 (no spread), not NaN.
    """
    _, inv_B = torch.unique(group_id_B, return_inverse=True)
    n_groups = int(inv_B.max()) + 1 if inv_B.numel() else 0
    x = x_B.double()
    count_G = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv_B, torch.ones_like(x))
    mean_G = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv_B, x) / count_G
    sq_G = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv_B, (x - mean_G[inv_B]) ** 2)
    std_G = torch.where(count_G > 1, (sq_G / (count_G - 1).clamp(min=1)).sqrt(), torch.zeros_like(sq_G))
    return (mean_G[inv_B].to(x_B.dtype), std_G[inv_B].to(x_B.dtype), count_G[inv_B].to(x_B.dtype))


@ADVANTAGES.register("grpo")
def grpo(x: AdvantageInput, *, eps: float = 1e-6) -> torch.Tensor:
    """GRPO group-normalised advantage (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300, §4.1.2).

    A_i = (R_i - mean_G R) / (std_G R + eps), std unbiased (torch.std, as TRL and verl).
    Shapes: rewards_B, group_id_B -> adv_B.
    """
    if eps < 0:
        raise ValueError(f"grpo: eps must be >= 0, got {eps}")
    mean_B, std_B, _ = group_stats(x.rewards_B, x.group_id_B)
    return (x.rewards_B - mean_B) / (std_B + eps)


@ADVANTAGES.register("mean_only")
def mean_only(x: AdvantageInput) -> torch.Tensor:
    """Dr. GRPO group-centred advantage, no std division (Liu et al. 2025, arXiv 2503.20783, §3.2).

    A_i = R_i - mean_G R. Dividing by the group std up-weights questions that are too easy or too
    hard (low spread); Dr. GRPO drops it. Shapes: rewards_B, group_id_B -> adv_B.
    """
    mean_B, _, _ = group_stats(x.rewards_B, x.group_id_B)
    return x.rewards_B - mean_B


@ADVANTAGES.register("rloo")
def rloo(x: AdvantageInput) -> torch.Tensor:
    """RLOO leave-one-out baseline (Ahmadian et al. 2024, arXiv 2402.14740, §3).

    A_i = R_i - mean_{j != i} R_j = G/(G-1) * (R_i - mean_G R); 0 for a group of one.
    Shapes: rewards_B, group_id_B -> adv_B.
    """
    mean_B, _, n_B = group_stats(x.rewards_B, x.group_id_B)
    scale_B = torch.where(n_B > 1, n_B / (n_B - 1).clamp(min=1), torch.zeros_like(n_B))
    return scale_B * (x.rewards_B - mean_B)


@ADVANTAGES.register("group_mean_batch_whiten")
def group_mean_batch_whiten(x: AdvantageInput, *, weighting: str = "token", eps: float = 1e-8) -> torch.Tensor:
    """DLER's batch-wise normalisation (REINFORCE++-baseline; DLER arXiv 2510.15110, §3.2).

    Ã_i = R_i - mean_G R, then A = (Ã - μ) / sqrt(σ² + eps) with μ, σ² (unbiased) taken over the whole
    batch (eps inside the root, as verl's `masked_whiten`).
    `weighting="token"` weighs each response by its token count, as the official code does (verl's
    `masked_whiten` over all valid tokens: long responses weigh more in μ and σ); `"response"` weighs every
    response once. Shapes: rewards_B, group_id_B, response_len_B -> adv_B.
    """
    if weighting not in ("token", "response"):
        raise ValueError(f"group_mean_batch_whiten: weighting must be 'token' or 'response', got {weighting!r}")
    if eps < 0:
        raise ValueError(f"group_mean_batch_whiten: eps must be >= 0, got {eps}")
    mean_B, _, _ = group_stats(x.rewards_B, x.group_id_B)
    c_B = (x.rewards_B - mean_B).double()
    w_B = x.response_len_B.double().clamp(min=1) if weighting == "token" else torch.ones_like(c_B)
    n = w_B.sum()
    mu = (w_B * c_B).sum() / n
    var = (w_B * (c_B - mu) ** 2).sum() / (n - 1).clamp(min=1)  # Bessel correction over the weighted count
    return ((c_B - mu) / (var + eps).sqrt()).to(x.rewards_B.dtype)

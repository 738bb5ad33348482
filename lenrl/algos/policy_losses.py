"""Per-token policy losses.

Signature of every entry: `fn(x: LossInput, *, <params>) -> (loss_BT, metrics)` where `metrics` maps a
name to a per-token tensor [B, T] that the learner averages over `mask_BT` for logging.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenrl.registry import Registry

POLICY_LOSSES = Registry("policy loss")


@dataclass(frozen=True)
class LossInput:
    """logp_BT: current policy log-probs of the response tokens (with grad); old_logp_BT: the behaviour
    policy's (no grad); adv_B: one advantage per response; mask_BT: bool, True on response tokens."""

    logp_BT: torch.Tensor
    old_logp_BT: torch.Tensor
    adv_B: torch.Tensor
    mask_BT: torch.Tensor


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(
    x: LossInput, *, clip_low: float = 0.2, clip_high: float = 0.2, dual_clip: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate (Schulman et al. 2017, PPO, arXiv 1707.06347, eq. 7), as used by GRPO.

    s = exp(logp - old_logp);  loss = -min(s A, clip(s, 1 - clip_low, 1 + clip_high) A).
    clip_high > clip_low is DAPO's clip-higher (arXiv 2503.14476, §3.1). With `dual_clip` = c > 1,
    for A < 0 the loss is capped at -c A (Ye et al. 2020, arXiv 1912.09729; verl's clip_ratio_c).
    Shapes: logp_BT, old_logp_BT, mask_BT [B, T]; adv_B [B] -> loss_BT [B, T].
    """
    if not (0 < clip_low <= 1 and 0 < clip_high <= 1):
        raise ValueError(f"ppo_clip: clip_low and clip_high must be in (0, 1], got {clip_low}, {clip_high}")
    if dual_clip is not None and not dual_clip > 1:
        raise ValueError(f"ppo_clip: dual_clip must be > 1, got {dual_clip}")
    adv_BT = x.adv_B.unsqueeze(1).to(x.logp_BT.dtype)
    ratio_BT = torch.exp(x.logp_BT - x.old_logp_BT)
    unclipped_BT = -adv_BT * ratio_BT
    clipped_BT = -adv_BT * torch.clamp(ratio_BT, 1.0 - clip_low, 1.0 + clip_high)
    loss_BT = torch.maximum(unclipped_BT, clipped_BT)
    metrics = {"clipfrac": (clipped_BT > unclipped_BT).float()}
    if dual_clip is not None:
        capped_BT = torch.minimum(loss_BT, -dual_clip * adv_BT)
        metrics["dual_clipfrac"] = ((adv_BT < 0) & (capped_BT < loss_BT)).float()
        loss_BT = torch.where(adv_BT < 0, capped_BT, loss_BT)
    return loss_BT, metrics

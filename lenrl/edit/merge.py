"""Weight merging of a tuned model into its base, per tensor (docs/algorithms.md §1.6).

Signature: `fn(base_T, tuned_T, *, <params>) -> merged_T`, one tensor at a time, same shape and dtype.

- `update_selective` (DLER, arXiv 2510.15110 §4.3): Δ = θ_tuned − θ_base; keep the `keep` fraction of Δ's
  entries with the largest magnitude (TIES-style trimming, per tensor: the paper does not say per tensor
  or global, TIES trims per tensor) and add `scale` times them: θ = θ_base + scale · TopK_keep(Δ).
  Paper: keep 0.25, scale 0.7. Not in DLER's public code.
- `linear`: θ = θ_base + weight · Δ, the interpolation DLER reports as failing; the comparison point.

With keep = 1 the first is the second with weight = scale (tests/edit/test_merge.py checks the relation).
"""

from __future__ import annotations

import math

import torch

from lenrl.registry import Registry

MERGES = Registry("merge method")


def kept_count(numel: int, keep: float) -> int:
    """Entries kept of a tensor of `numel`: round(keep · numel), at least 1 (a tensor is never left out
    whole by rounding), at most numel."""
    return min(numel, max(1, round(keep * numel)))


def top_magnitude_mask(delta_T: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask of exactly `kept_count(numel, keep)` entries of `delta_T` with the largest |value| (ties
    broken by torch.topk's order). Shape of delta_T -> same shape, bool."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    flat = delta_T.reshape(-1)
    k = kept_count(flat.numel(), keep)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat.abs().float(), k, sorted=False).indices] = True
    return mask.reshape(delta_T.shape)


@MERGES.register("update_selective")
def update_selective(
    base_T: torch.Tensor, tuned_T: torch.Tensor, *, keep: float = 0.25, scale: float = 0.7
) -> torch.Tensor:
    """θ_base + scale · TopK_keep(θ_tuned − θ_base), per tensor (DLER §4.3; docs/algorithms.md §1.6).
    Computed in fp32 and returned in the base's dtype. Shapes: any, equal -> same."""
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    delta = tuned_T.float() - base_T.float()
    kept = torch.where(top_magnitude_mask(delta, keep), delta, 0.0)
    return (base_T.float() + scale * kept).to(base_T.dtype)


@MERGES.register("linear")
def linear(base_T: torch.Tensor, tuned_T: torch.Tensor, *, weight: float = 0.5) -> torch.Tensor:
    """θ_base + weight · (θ_tuned − θ_base): weight 0 is the base, 1 the tuned model. Shapes: equal -> same."""
    if not math.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight}")
    return (base_T.float() + weight * (tuned_T.float() - base_T.float())).to(base_T.dtype)

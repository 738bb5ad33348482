"""KL estimators between the current policy and a reference, per token (Schulman 2020, "Approximating
KL divergence", http://joschu.net/blog/kl-approx.html).

Signature: `fn(logp_BT, ref_logp_BT) -> kl_BT`, with d = ref_logp - logp for samples drawn from the policy.
"""

from __future__ import annotations

import torch

from lenrl.registry import Registry

KL_ESTIMATORS = Registry("KL estimator")


@KL_ESTIMATORS.register("k1")
def k1(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    """k1 = logp - ref_logp: unbiased, high variance, can be negative. Shapes [B, T] -> [B, T]."""
    return logp_BT - ref_logp_BT


@KL_ESTIMATORS.register("k2")
def k2(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    """k2 = 0.5 (logp - ref_logp)^2 (verl's `mse`): biased, low variance, >= 0. Shapes [B, T] -> [B, T]."""
    return 0.5 * (logp_BT - ref_logp_BT) ** 2


@KL_ESTIMATORS.register("k3")
def k3(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    """k3 = clamp(exp(d) - d - 1, max=10) with d = ref_logp - logp (GRPO eq. 4; verl's `low_var_kl` in
    `core_algos.kl_penalty`): unbiased before the clamp, >= 0. Shapes [B, T] -> [B, T].

    As verl does, the *value* is clamped to at most 10, so a token far from the reference (k3 > 10 from
    d > ~2.5) adds a constant and no gradient; d itself is first clamped to [-20, 20] only so that
    exp(d) stays finite (values there are far past the clamp, so this changes nothing else).
    """
    d_BT = torch.clamp(ref_logp_BT - logp_BT, -20.0, 20.0)
    return torch.clamp(torch.exp(d_BT) - d_BT - 1.0, max=10.0)

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
    """k3 = exp(d) - d - 1 with d = ref_logp - logp (GRPO eq. 4; verl's `low_var_kl`): unbiased, >= 0.

    d is clamped to [-10, 10] as verl's `kl_penalty` does, so one outlier token cannot blow up the loss.
    Shapes [B, T] -> [B, T].
    """
    d_BT = torch.clamp(ref_logp_BT - logp_BT, -10.0, 10.0)
    return torch.exp(d_BT) - d_BT - 1.0

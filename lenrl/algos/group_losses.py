"""Group-structured policy objectives: the loss of a prompt's group depends on all of its responses at once.

Signature of every entry: `fn(x: GroupLossInput, *, num_groups, num_tokens, max_len, <params>) -> (loss,
metrics)`, where `loss` is this micro-batch's share of the mini-batch scalar (already normalised by the
mini-batch's `num_groups` / `num_tokens`, so micro-batches sum to the whole) and `metrics` holds floats for
logging. Such a loss replaces the per-token policy loss *and* the aggregation: `algo.loss` may name an entry
of either registry, and the learner keeps every group whole inside a micro-batch (checked at config load:
`train.micro_batch_size` must be a multiple of `rollout.n`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenrl.registry import Registry

GROUP_LOSSES = Registry("group loss", runtime=("num_groups", "num_tokens", "max_len"))


@dataclass(frozen=True)
class GroupLossInput:
    """logp_BT: current log-probs of the response tokens (with grad); old_logp_BT: the behaviour policy's
    (no grad); mask_BT bool [B, T]; correct_B bool (verifier outcome before length shaping);
    response_len_B long (tokens); group_id_B long. Every group present is whole."""

    logp_BT: torch.Tensor
    old_logp_BT: torch.Tensor
    mask_BT: torch.Tensor
    correct_B: torch.Tensor
    response_len_B: torch.Tensor
    group_id_B: torch.Tensor


def drpo_weights(len_B: torch.Tensor, *, max_len: int, lam: float) -> torch.Tensor:
    """DRPO's positive weights over the correct responses of ONE group (arXiv 2510.04474, §3.2):

    w_i = exp(r_l(o_i) / λ) / Σ_j exp(r_l(o_j) / λ),  r_l(o) = 1 - |o| / C,  C = max_len.

    Self-normalised importance weights of P*(o) ∝ π_old⁺(o) exp(r_l(o)/λ). λ → ∞: uniform (DisCO without
    length control); small λ: the weight concentrates on the shortest correct responses. C is the configured
    cap, never the padded width (docs/algorithms.md §2.6). Shapes: len_B [P] (P >= 1) -> w_B [P], sums to 1.
    """
    return torch.softmax((1.0 - len_B.double() / max_len) / lam, dim=0)


@GROUP_LOSSES.register("drpo")
def drpo(
    x: GroupLossInput,
    *,
    num_groups: int,
    num_tokens: int,
    max_len: int,
    lam: float = 0.1,
    tau: float = 10.0,
    delta: float = 1e-4,
    beta: float = 1e3,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DRPO (Li, Chen, Lin, Yang; arXiv 2510.04474, ICLR 2026; code `compute_policy_loss_drpo`): correct
    responses weighted by exp((1 - |o|/C)/λ) within their group, wrong ones through τ·log-sum-exp, and a
    KL(π_old‖π) hinge trust region.

    Per group q with correct set P and incorrect set N (both non-empty):

        s_i = (1/|o_i|) Σ_t log π_θ(o_i,t)                      (length-normalised log-likelihood)
        J_q = Σ_{i∈P} w_i s_i - τ log Σ_{j∈N} exp(s_j / τ)        (w from `drpo_weights`)
        loss = -(1/num_groups) Σ_q J_q + max(β (KL - δ), 0).detach() · KL,  KL = mean_t(log π_old - log π_θ)

    The length preference acts only inside the correct set, so it can shrink but never flip a correct
    answer's push (the paper's point against composite rewards). `num_groups` counts every group of the
    mini-batch, filtered-out ones too (as the code). The official code writes the negative term with a
    value-1 trick (S / S.detach()); here its real value τ·LSE is the loss value, with the same gradient.
    The trust-region term uses this micro-batch's KL (as verl, per micro-batch), weighted by its share of
    the mini-batch's tokens. Defaults: λ=0.1, τ=10, δ=1e-4, β=1e3 (`run_drpo_1.5b_8k.sh`).
    Shapes: [B, T] and [B] -> scalar loss.
    """
    if not lam > 0 or not tau > 0 or delta < 0 or beta < 0:
        raise ValueError(f"drpo: need lam > 0, tau > 0, delta >= 0, beta >= 0; got {lam}, {tau}, {delta}, {beta}")
    mask = x.mask_BT.to(x.logp_BT.dtype)
    tokens_B = mask.sum(1).clamp(min=1)
    s_B = (x.logp_BT * mask).sum(1) / tokens_B
    total = x.logp_BT.new_zeros(())
    used = 0
    for g in torch.unique(x.group_id_B):
        in_g = x.group_id_B == g
        pos, neg = in_g & x.correct_B, in_g & ~x.correct_B
        if not (pos.any() and neg.any()):
            continue  # all-correct / all-wrong groups carry no DisCO signal (verl drops them)
        w = drpo_weights(x.response_len_B[pos], max_len=max_len, lam=lam).to(s_B.dtype)
        total = total + (w * s_B[pos]).sum() - tau * torch.logsumexp(s_B[neg] / tau, dim=0)
        used += 1
    kl = ((x.old_logp_BT - x.logp_BT) * mask).sum() / mask.sum().clamp(min=1)
    hinge = torch.clamp(beta * (kl.detach() - delta), min=0.0)
    loss = -total / num_groups + hinge * kl * (mask.sum() / num_tokens)
    return loss, {"groups_used": float(used), "kl_old": float(kl.detach())}

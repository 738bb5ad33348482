"""Loss aggregation: per-token losses [B, T] -> one scalar.

Signature: `fn(loss_BT, mask_BT, *, num_tokens, num_seqs, max_len, <params>) -> scalar`. `num_tokens` and
`num_seqs` count the valid tokens and responses of the whole optimizer mini-batch (across micro-batches
and learners), so summing the results of micro-batches gives the result of the whole mini-batch:
the aggregate never depends on how the batch was split. `max_len` is the configured response budget
(rollout.max_tokens), never the padded width, which changes from batch to batch (docs/algorithms.md §2.6).
"""

from __future__ import annotations

import torch

from lenrl.registry import Registry

AGGREGATIONS = Registry("loss aggregation", runtime=("num_tokens", "num_seqs", "max_len"))


@AGGREGATIONS.register("token_mean")
def token_mean(
    loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int, max_len: int
) -> torch.Tensor:
    """Token-level mean over the mini-batch (DAPO, arXiv 2503.14476, §3.3; DLER).

    L = sum_{i,t} m_it l_it / sum_{i,t} m_it. Every token weighs the same, so longer responses carry
    proportionally more weight. Shapes: loss_BT, mask_BT [B, T] -> scalar.
    """
    return torch.where(mask_BT, loss_BT, 0.0).sum() / max(num_tokens, 1)


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(
    loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int, max_len: int
) -> torch.Tensor:
    """Original GRPO aggregation (DeepSeekMath, arXiv 2402.03300, eq. 3): mean over each response's
    tokens, then mean over responses.

    L = (1/N) sum_i (1/|o_i|) sum_t m_it l_it. Each response weighs the same, so a token of a long
    response weighs less (the length bias Dr. GRPO points out). Shapes: [B, T] -> scalar.
    """
    per_seq_B = torch.where(mask_BT, loss_BT, 0.0).sum(1) / mask_BT.sum(1).clamp(min=1)
    return per_seq_B.sum() / max(num_seqs, 1)


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(
    loss_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    num_tokens: int,
    num_seqs: int,
    max_len: int,
    norm_len: int | None = None,
) -> torch.Tensor:
    """Dr. GRPO aggregation (arXiv 2503.20783, §3.2): token sum per response divided by a constant.

    L = (1/N) sum_i (1/C) sum_t m_it l_it with C = norm_len, or the response budget max_len when unset,
    so no per-response length normalisation biases the update. Shapes: [B, T] -> scalar.
    """
    if norm_len is not None and norm_len <= 0:
        raise ValueError(f"seq_mean_token_sum_norm: norm_len must be > 0, got {norm_len}")
    return torch.where(mask_BT, loss_BT, 0.0).sum() / ((norm_len or max_len) * max(num_seqs, 1))


@AGGREGATIONS.register("seq_mean_token_sum")
def seq_mean_token_sum(
    loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int, max_len: int
) -> torch.Tensor:
    """Sequence-level REINFORCE aggregation (RLOO, arXiv 2402.14740, §3: the whole response is one action).

    L = (1/N) sum_i sum_t m_it l_it: the token sum per response (its sequence log-likelihood term),
    mean over responses; equals `seq_mean_token_sum_norm` with C = 1. Shapes: [B, T] -> scalar.
    """
    return torch.where(mask_BT, loss_BT, 0.0).sum() / max(num_seqs, 1)

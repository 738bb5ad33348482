"""Loss aggregation: per-token losses [B, T] -> one scalar.

Signature: `fn(loss_BT, mask_BT, *, num_tokens, num_seqs, <params>) -> scalar`. `num_tokens` and
`num_seqs` count the valid tokens and responses of the whole optimizer mini-batch (across micro-batches
and learners), so summing the results of micro-batches gives the result of the whole mini-batch:
the aggregate never depends on how the batch was split.
"""

from __future__ import annotations

import torch

from lenrl.registry import Registry

AGGREGATIONS = Registry("loss aggregation", runtime=("num_tokens", "num_seqs"))


@AGGREGATIONS.register("token_mean")
def token_mean(loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int) -> torch.Tensor:
    """Token-level mean over the mini-batch (DAPO, arXiv 2503.14476, §3.3; DLER).

    L = sum_{i,t} m_it l_it / sum_{i,t} m_it. Every token weighs the same, so longer responses carry
    proportionally more weight. Shapes: loss_BT, mask_BT [B, T] -> scalar.
    """
    return torch.where(mask_BT, loss_BT, 0.0).sum() / max(num_tokens, 1)


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(
    loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int
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
    loss_BT: torch.Tensor, mask_BT: torch.Tensor, *, num_tokens: int, num_seqs: int, norm_len: int
) -> torch.Tensor:
    """Dr. GRPO aggregation (arXiv 2503.20783, §3.2): token sum per response divided by a constant.

    L = (1/N) sum_i (1/norm_len) sum_t m_it l_it, with norm_len fixed (the generation budget), so no
    per-response length normalisation biases the update. Shapes: [B, T] -> scalar.
    """
    return torch.where(mask_BT, loss_BT, 0.0).sum() / (norm_len * max(num_seqs, 1))

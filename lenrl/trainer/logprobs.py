"""Per-token log-probabilities of response tokens under a causal LM.

The sampling engine samples from softmax(logits / temperature), so the learner divides by the same
temperature; otherwise the importance ratio and the sync-parity check compare different distributions.
"""

from __future__ import annotations

import torch

from lenrl.trainer.batch import TrainBatch


def token_logprobs(logits_BTV: torch.Tensor, target_BT: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] = logits[target] - logsumexp(logits), per token.

    One row of the batch at a time, so no [B, T, V] log-softmax is ever materialised (the vocabulary
    projection dominates a small model's memory). Shapes: [B, T, V], [B, T] long -> [B, T].
    """
    return _rows(logits_BTV, target_BT, with_entropy=False)[0]


def token_logprobs_entropy(logits_BTV: torch.Tensor, target_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` and the entropy of each position's distribution, H = logsumexp(z) - sum softmax(z) z,
    from the same per-row logsumexp; the entropy is a metric and carries no gradient.
    Shapes: [B, T, V], [B, T] long -> ([B, T], [B, T])."""
    logp_BT, ent_BT = _rows(logits_BTV, target_BT, with_entropy=True)
    assert ent_BT is not None
    return logp_BT, ent_BT


def _rows(
    logits_BTV: torch.Tensor, target_BT: torch.Tensor, *, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    logps, ents = [], []
    for logits_TV, target_T in zip(logits_BTV, target_BT, strict=True):
        lse_T = torch.logsumexp(logits_TV, -1)
        logps.append(logits_TV.gather(-1, target_T.unsqueeze(-1)).squeeze(-1) - lse_T)
        if with_entropy:
            with torch.no_grad():
                z_TV = logits_TV.detach()
                ents.append(lse_T.detach() - ((z_TV - lse_T.detach().unsqueeze(-1)).exp() * z_TV).sum(-1))
    return torch.stack(logps), (torch.stack(ents) if with_entropy else None)


def response_logprobs(
    model: torch.nn.Module, mb: TrainBatch, *, temperature: float, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (logp_BT, entropy_BT or None) for the response block of `mb`.

    Position ids come from the attention mask because prompts are left-padded.
    Shapes: input_ids_BL [B, P + T] -> logp_BT [B, T]; entropy is computed without grad.
    """
    T = mb.response_mask_BT.shape[1]
    am_BL = mb.attention_mask_BL
    pos_BL = (am_BL.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    out = model(
        input_ids=mb.input_ids_BL.to(device),
        attention_mask=am_BL.to(device),
        position_ids=pos_BL.to(device),
        logits_to_keep=T + 1,
        use_cache=False,
    )
    logits_BTV = out.logits[:, :-1].float()  # position P-1+t predicts response token t
    if temperature != 1.0:  # a [B, T, V] copy: skipped at temperature 1
        logits_BTV = logits_BTV / temperature
    target_BT = mb.input_ids_BL[:, -T:].to(device)
    if with_entropy:
        return token_logprobs_entropy(logits_BTV, target_BT)
    return token_logprobs(logits_BTV, target_BT), None

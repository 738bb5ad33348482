"""Per-token log-probabilities of response tokens under a causal LM.

The sampling engine samples from softmax(logits / temperature), so the learner divides by the same
temperature; otherwise the importance ratio and the sync-parity check compare different distributions.

Shared prefixes (`train.shared_prefix`): the G responses of a group continue one prompt, and a padded
forward pass computes that prompt G times. Instead the group's prompt goes through the model once, its
keys and values are indexed out to the group's rows, and the responses attend to them as a cache
(the shared-prefix forward of Prefix Grouper, Liu et al. 2025, "Efficient GRPO Training through
Shared-Prefix Forward"). The log-probs are the same function of the weights, and autograd carries the
gradient back through the cache into the one prompt pass, so loss and gradient equal the padded
computation (tests/trainer/test_logprobs.py) while the prompt costs 1/G of its forward and backward.
"""

from __future__ import annotations

from typing import Any

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
    model: torch.nn.Module,
    mb: TrainBatch,
    *,
    temperature: float,
    with_entropy: bool = False,
    share_prefix: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (logp_BT, entropy_BT or None) for the response block of `mb`.

    Position ids come from the attention mask because prompts are left-padded. `share_prefix`: one prompt
    pass per group when the rows of each group hold the same prompt (`shared_prompts`), else the padded pass.
    Shapes: input_ids_BL [B, P + T] -> logp_BT [B, T]; entropy is computed without grad.
    """
    T = mb.response_mask_BT.shape[1]
    device = next(model.parameters()).device
    shared = shared_prompts(mb) if share_prefix else None
    logits_BTV = (
        _padded_logits(model, mb, device) if shared is None else _shared_prefix_logits(model, mb, shared, device)
    )
    logits_BTV = logits_BTV.float()
    if temperature != 1.0:  # a [B, T, V] copy: skipped at temperature 1
        logits_BTV = logits_BTV / temperature
    target_BT = mb.input_ids_BL[:, -T:].to(device)
    if with_entropy:
        return token_logprobs_entropy(logits_BTV, target_BT)
    return token_logprobs(logits_BTV, target_BT), None


def _padded_logits(model: torch.nn.Module, mb: TrainBatch, device: torch.device) -> torch.Tensor:
    """Logits predicting each response token, from one pass over [prompt | response]: [B, T, V]."""
    T = mb.response_mask_BT.shape[1]
    am_BL = mb.attention_mask_BL
    pos_BL = (am_BL.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=mb.input_ids_BL.to(device),
        attention_mask=am_BL.to(device),
        position_ids=pos_BL.to(device),
        logits_to_keep=T + 1,
        use_cache=False,
    )
    return out.logits[:, :-1]  # position P-1+t predicts response token t


def shared_prompts(mb: TrainBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first row of each distinct prompt [U], each row's prompt index [B]) when the rows of every group
    hold the same prompt and some prompt has several rows; None otherwise (nothing to share).
    Prompt identity is checked on the tokens, so a batch whose groups differ in prompt is never merged."""
    P = mb.input_ids_BL.shape[1] - mb.response_mask_BT.shape[1]
    if P == 0:
        return None
    ids_BP, am_BP = mb.input_ids_BL[:, :P], mb.attention_mask_BL[:, :P]  # equal masks: equal padding too
    first: dict[int, int] = {}  # group id -> its first row; dicts keep insertion order: prompt u is the u-th
    index: dict[int, int] = {}
    row_u: list[int] = []
    for i, g in enumerate(mb.group_id_B.tolist()):
        if g not in first:
            first[g], index[g] = i, len(index)
        elif not (torch.equal(ids_BP[i], ids_BP[first[g]]) and torch.equal(am_BP[i], am_BP[first[g]])):
            return None
        row_u.append(index[g])
    if len(first) == len(row_u):
        return None
    return torch.tensor(list(first.values())), torch.tensor(row_u)


SHAREABLE_LAYERS = ("DynamicLayer", "DynamicSlidingWindowLayer")
"""cache layers that only append keys and values: full and sliding-window attention"""


def _attention_only(cache: object) -> bool:
    """Hybrid models (linear attention, state-space layers: Qwen3-Next, LFM2) keep a recurrent state that the
    response pass overwrites in place; their prompts are not shared (checked per call, on the cache)."""
    layers: Any = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ in SHAREABLE_LAYERS for layer in layers)


def forward_positions(mb: TrainBatch, shared: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[int, int]:
    """(input positions the passes compute, of which real tokens) for `response_logprobs` of `mb`:
    B x (P + T) padded; U x P for the distinct prompts plus B x (T - 1) for the responses when shared."""
    am_BL, T = mb.attention_mask_BL, mb.response_mask_BT.shape[1]
    if shared is None:
        return am_BL.numel(), int(am_BL.sum())
    P = am_BL.shape[1] - T
    prompts_UP, responses = am_BL[shared[0], :P], am_BL[:, P : P + T - 1]
    return prompts_UP.numel() + responses.numel(), int(prompts_UP.sum() + responses.sum())


def _shared_prefix_logits(
    model: torch.nn.Module, mb: TrainBatch, shared: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Logits predicting each response token: each distinct prompt once (its last position predicts
    response token 0), then the responses over the prompts' keys/values indexed out to their rows."""
    first_U, row_u_B = shared[0].to(device), shared[1].to(device)
    T = mb.response_mask_BT.shape[1]
    P = mb.input_ids_BL.shape[1] - T
    am_BL = mb.attention_mask_BL.to(device)
    am_UP = am_BL[first_U, :P]
    prompt = model(
        input_ids=mb.input_ids_BL[:, :P].to(device)[first_U],
        attention_mask=am_UP,
        position_ids=(am_UP.cumsum(-1) - 1).clamp(min=0),
        logits_to_keep=1,
        use_cache=True,
    )
    first_B1V = prompt.logits[row_u_B]
    if T == 1:
        return first_B1V
    cache = prompt.past_key_values
    if not _attention_only(cache):  # recurrent state is updated in place, which autograd cannot go back through
        return _padded_logits(model, mb, device)
    cache.reorder_cache(row_u_B)  # [U, ...] -> [B, ...]: an index_select, through which gradients flow back
    # the last response position predicts nothing, so the pass stops one short of it
    pos_BT = am_UP.sum(1)[row_u_B, None] + torch.arange(T - 1, device=device)
    rest = model(
        input_ids=mb.input_ids_BL[:, P : P + T - 1].to(device),
        attention_mask=am_BL[:, : P + T - 1],
        position_ids=pos_BT,
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([first_B1V, rest.logits], 1)

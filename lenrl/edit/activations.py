"""Teacher-forced activation capture for ThinkEdit's reasoning-length direction.

ThinkEdit (Sun, Yan, Weng, EMNLP 2025; official code github.com/Trustworthy-ML-Lab/ThinkEdit,
`extract_thinking_length_direction_gsm8k_{attn,mlp}.py`, `find_short_thinking_attn_heads.py`) feeds
`prompt + thinking` through the model and averages activations over the positions whose next-token
prediction produces the thinking tokens: [start − 1, end − 1), with start = number of prompt tokens and
end = number of prompt + thinking tokens. Per example n and decoder layer ℓ, with P = those positions:

- attn[n, ℓ] = mean_{t∈P} (h_ℓ + Attn_ℓ(h_ℓ))[t], the residual stream after the attention block, i.e. the
  input of layer ℓ's `post_attention_layernorm` (the official `_attn` script hooks exactly that input);
- mlp[n, ℓ]  = mean_{t∈P} h_{ℓ+1}[t], the output of the whole decoder layer ℓ;
- o_in[n, ℓ] = mean_{t∈P} z_ℓ[t], the input of `self_attn.o_proj` (the heads' outputs concatenated, F =
  heads · head_dim). Head k writes W_o[:, k·hd:(k+1)·hd] · z[k·hd:(k+1)·hd], linear in z, so the mean of
  a head's write over P is its write of the mean z: averaging first loses nothing for head attribution.

Shapes: attn, mlp [N, L, D]; o_in [N, L, F]; fp32 on CPU. The directions themselves (long minus short
means) and the head scores are computed from these elsewhere (lenrl/edit/thinkedit.py).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lenrl.edit.layout import decoder_layers
from lenrl.errors import LenrlError
from lenrl.files import atomic_write

SITES = ("attn", "mlp", "o_in")


@dataclass(frozen=True)
class Example:
    """One teacher-forced sequence. `token_ids` is prompt + thinking (anything after `end` is ignored);
    `start` = number of prompt tokens (>= 1), `end` = number of prompt + thinking tokens."""

    token_ids: list[int]
    start: int
    end: int


@dataclass
class Activations:
    """Per-example, per-layer means over the thinking positions (module docstring): attn, mlp [N, L, D],
    o_in [N, L, F], fp32."""

    attn: torch.Tensor
    mlp: torch.Tensor
    o_in: torch.Tensor

    def __post_init__(self) -> None:
        shapes = {site: tuple(getattr(self, site).shape) for site in SITES}
        if any(len(s) != 3 for s in shapes.values()) or len({s[:2] for s in shapes.values()}) != 1:
            raise LenrlError(f"activations: attn, mlp, o_in must be [N, L, *] with equal N and L, got {shapes}")
        if shapes["attn"] != shapes["mlp"]:
            raise LenrlError(f"activations: attn and mlp must have one shape, got {shapes}")

    def save(self, path: str | os.PathLike) -> None:
        """One torch.save'd dict {attn, mlp, o_in}, written whole or not at all (lenrl.files.atomic_write)."""
        buf = io.BytesIO()
        torch.save({site: getattr(self, site).contiguous() for site in SITES}, buf)
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Activations:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise LenrlError(f"{path}: no such activations file") from None
        except Exception as e:  # torch raises pickle/zip errors of several kinds on a foreign file
            raise LenrlError(f"{path}: not an activations file ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict) or any(not isinstance(data.get(site), torch.Tensor) for site in SITES):
            raise LenrlError(f"{path}: not an activations file (want a dict of tensors {', '.join(SITES)})")
        return cls(**{site: data[site] for site in SITES})

    def select(self, index: Sequence[int] | torch.Tensor) -> Activations:
        """The rows `index` (a list of ints or an integer/bool tensor) of every site."""
        idx = index if isinstance(index, torch.Tensor) else torch.as_tensor(list(index), dtype=torch.long)
        return Activations(**{site: getattr(self, site)[idx] for site in SITES})

    def __len__(self) -> int:
        return self.attn.shape[0]


def check_examples(examples: Sequence[Example]) -> None:
    """LenrlError naming the first example that breaks 1 <= start < end <= len(token_ids)."""
    if not examples:
        raise LenrlError("activations: no examples given")
    for i, ex in enumerate(examples):
        if not 1 <= ex.start < ex.end <= len(ex.token_ids):
            raise LenrlError(
                f"activations: example {i}: need 1 <= start < end <= len(token_ids), "
                f"got start={ex.start}, end={ex.end}, len={len(ex.token_ids)}"
            )


def _position_weights(batch: Sequence[Example], length: int) -> torch.Tensor:
    """[B, T] fp32: 1/(end − start) on positions [start − 1, end − 1) of each row, 0 elsewhere (padding too),
    so that weights @ h is the mean over the thinking positions."""
    w = torch.zeros(len(batch), length)
    for b, ex in enumerate(batch):
        w[b, ex.start - 1 : ex.end - 1] = 1.0 / (ex.end - ex.start)
    return w


def _padded(batch: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask, [B, T] each. Only tokens [0, end − 1) are fed: the model is
    causal, so the last thinking token (and anything after it) never reaches the positions we average."""
    length = max(ex.end - 1 for ex in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(batch), length, dtype=torch.long)
    for b, ex in enumerate(batch):
        ids[b, : ex.end - 1] = torch.as_tensor(ex.token_ids[: ex.end - 1], dtype=torch.long)
        mask[b, : ex.end - 1] = 1
    return ids, mask


def _register(layers: list[Any], out: dict[str, list[torch.Tensor | None]], weights: list[torch.Tensor]) -> list[Any]:
    """Hooks that reduce each site to its weighted mean as soon as it is computed: out[site][ℓ] = [B, *]."""

    def reduce(site: str, layer: int) -> Callable[[torch.Tensor], None]:
        def store(h: torch.Tensor) -> None:
            out[site][layer] = torch.einsum("bt,btd->bd", weights[0].to(h.device), h.float()).cpu()

        return store

    handles = []
    for i, layer in enumerate(layers):
        to_attn, to_mlp, to_o_in = reduce("attn", i), reduce("mlp", i), reduce("o_in", i)
        # Pre-hooks see the module's input: the post-attention residual, and the concatenated head outputs.
        handles.append(layer.post_attention_layernorm.register_forward_pre_hook(lambda m, a, f=to_attn: f(a[0])))
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a, f=to_o_in: f(a[0])))
        # The layer's own output, not `output_hidden_states`: for Llama/Qwen2 HF's last hidden state is taken
        # after the final norm (the official `_mlp` script uses it so); we keep the pre-norm residual stream
        # for every layer alike. Older transformers return a tuple from the layer, newer a tensor.
        handles.append(layer.register_forward_hook(lambda m, a, o, f=to_mlp: f(o[0] if isinstance(o, tuple) else o)))
    return handles


def mean_activations(model: Any, examples: list[Example], *, batch_size: int = 8) -> Activations:
    """Teacher-force every example through `model` (an HF causal LM) and return the per-layer means of the
    three sites over positions [start − 1, end − 1) (module docstring). Batches of `batch_size`, right-padded
    with an attention mask (equal to one example at a time: tests/edit/test_activations.py); examples are
    batched in order of length to waste less on padding, and returned in the given order. Runs in eval mode
    under torch.no_grad and restores the model's train/eval mode and removes its hooks afterwards."""
    check_examples(examples)
    if batch_size < 1:
        raise LenrlError(f"activations: batch_size must be >= 1, got {batch_size}")
    layers = decoder_layers(model)  # model.model.layers; LenrlError when absent
    device = next(model.parameters()).device
    pad_id = getattr(model.config, "pad_token_id", None) or 0
    order = sorted(range(len(examples)), key=lambda i: examples[i].end)
    out: dict[str, list[torch.Tensor | None]] = {site: [None] * len(layers) for site in SITES}
    weights: list[torch.Tensor] = []  # the current batch's [B, T] position weights, read by the hooks
    rows: dict[str, list[torch.Tensor]] = {site: [] for site in SITES}
    was_training = model.training
    handles = _register(layers, out, weights)
    try:
        model.eval()
        with torch.no_grad():
            for lo in range(0, len(order), batch_size):
                batch = [examples[i] for i in order[lo : lo + batch_size]]
                ids, mask = _padded(batch, pad_id)
                weights[:] = [_position_weights(batch, ids.shape[1])]
                # The base model, not the LM: the logits ([B, T, vocab]) are not needed and can be large.
                model.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
                for site in SITES:
                    if any(t is None for t in out[site]):
                        raise LenrlError(f"activations: site {site!r} was not reached in every layer of the model")
                    rows[site].append(torch.stack([t for t in out[site] if t is not None], dim=1))
                    out[site] = [None] * len(layers)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order)] = torch.arange(len(order))
    return Activations(**{site: torch.cat(rows[site])[inverse] for site in SITES})

"""Where the attention heads of a decoder-only model live, for per-head weight edits (ThinkEdit, docs/algorithms.md §7).

The supported families (`SUPPORTED`) compute attention as q/k/v projections per head and one output projection
`o_proj` whose input is the heads' outputs concatenated: head h owns the input columns `h·K … (h+1)·K − 1` of
`o_proj.weight` [D, H·K]. Grouped-query attention (fewer k/v heads) does not change that, and the edit only
touches `o_proj`. Families with fused or differently laid-out projections (GPT-2's `c_proj`, Phi's `dense`, …)
are refused rather than edited wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lenrl.errors import LenrlError

SUPPORTED = ("llama", "qwen2", "mistral", "qwen3")


@dataclass(frozen=True)
class AttentionLayout:
    model_type: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int

    @classmethod
    def from_config(cls, config: Any) -> AttentionLayout:
        """Read the layout from a transformers `PretrainedConfig`. `head_dim` is the config's own when it sets
        one (Qwen3 and some Mistrals have H·K ≠ D), else hidden_size // num_heads."""
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED:
            raise LenrlError(
                f"model_type {model_type!r} has no per-head attention layout lenrl can edit; supported: "
                f"{', '.join(SUPPORTED)}"
            )
        hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None)
        if head_dim is None:
            if heads <= 0 or hidden % heads:
                raise LenrlError(
                    f"{model_type} config: hidden_size {hidden} is not a multiple of num_attention_heads {heads} "
                    "and the config sets no head_dim"
                )
            head_dim = hidden // heads
        kv = getattr(config, "num_key_value_heads", None) or heads
        return cls(model_type, int(config.num_hidden_layers), heads, int(kv), int(head_dim), hidden)

    @property
    def o_proj_in(self) -> int:
        """Input features of o_proj: the heads' outputs concatenated, H·K."""
        return self.num_heads * self.head_dim


def decoder_layers(model: Any) -> list[Any]:
    """The decoder layers, `model.model.layers` (a *ForCausalLM of the supported families)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise LenrlError(f"{type(model).__name__} has no model.layers: not a decoder-only causal LM lenrl can edit")
    return list(layers)


def _checked_o_proj(layer_module: Any, layout: AttentionLayout, index: int) -> torch.nn.Linear:
    proj = getattr(getattr(layer_module, "self_attn", None), "o_proj", None)
    if not isinstance(proj, torch.nn.Linear):
        raise LenrlError(f"decoder layer {index} has no self_attn.o_proj linear layer")
    want = (layout.hidden_size, layout.o_proj_in)
    if tuple(proj.weight.shape) != want:
        raise LenrlError(
            f"layer {index} o_proj.weight has shape {tuple(proj.weight.shape)}, but the config says "
            f"(hidden_size, num_heads·head_dim) = {want}"
        )
    return proj


def o_proj(model: Any, layer: int) -> torch.nn.Linear:
    """`decoder_layers(model)[layer].self_attn.o_proj`, its weight checked to be [hidden_size, H·K]."""
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise LenrlError(f"layer {layer} out of range: the model has {len(layers)} decoder layers")
    return _checked_o_proj(layers[layer], AttentionLayout.from_config(model.config), layer)


def layout_of(model: Any) -> AttentionLayout:
    """The model's layout from its config, after checking the layer count and every layer's o_proj shape."""
    layout = AttentionLayout.from_config(model.config)
    layers = decoder_layers(model)
    if len(layers) != layout.num_layers:
        raise LenrlError(f"config says {layout.num_layers} layers, the model has {len(layers)}")
    for i, layer_module in enumerate(layers):
        _checked_o_proj(layer_module, layout, i)
    return layout

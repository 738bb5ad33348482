"""ThinkEdit: the reasoning-length direction, per-head scores, and the o_proj edit (Sun, Yan, Weng, EMNLP 2025,
arXiv 2503.22048; official code github.com/Trustworthy-ML-Lab/ThinkEdit; docs/algorithms.md §7).

Shapes: N examples, L layers, H heads, K head_dim, D hidden size, F = H·K (o_proj's input). Activations come in
already averaged over each example's thinking positions (lenrl/edit/activations.py):
- attn_NLD: the residual stream after the attention block (input of post_attention_layernorm),
- mlp_NLD: the output of the whole decoder layer,
- o_in_NLF: the input of o_proj, the heads' outputs concatenated.

Pipeline: v = length_direction(long, short) per layer; u = short_unit_direction(v) = −v/‖v‖ (the "short
thinking" direction); scores = head_contributions(o_in of short examples, W_o, u); the top heads'
o_proj column blocks lose their component along u: W ← (I − ûûᵀ)·W (apply_thinkedit). Steering instead adds
α·v to a site's output at every position (steering_bias, add_steering_bias).

The math is computed in fp32 whatever the activations' or weights' dtype; edited weights keep their dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lenrl.edit.layout import AttentionLayout, decoder_layers, layout_of
from lenrl.errors import LenrlError


def length_direction(long_NLD: torch.Tensor, short_NLD: torch.Tensor) -> torch.Tensor:
    """v_ℓ = mean over long examples − mean over short examples, per layer, un-normalised (ThinkEdit §3;
    `extract_thinking_length_direction_gsm8k_attn.py`). [N₁, L, D], [N₂, L, D] -> [L, D] fp32."""
    if long_NLD.ndim != 3 or short_NLD.ndim != 3:
        raise ValueError(f"activations must be [N, L, D], got {tuple(long_NLD.shape)} and {tuple(short_NLD.shape)}")
    if long_NLD.shape[0] == 0 or short_NLD.shape[0] == 0:
        raise ValueError(f"need long and short examples, got {long_NLD.shape[0]} long and {short_NLD.shape[0]} short")
    if long_NLD.shape[1:] != short_NLD.shape[1:]:
        raise ValueError(
            f"long and short activations differ in [L, D]: {tuple(long_NLD.shape[1:])} vs {tuple(short_NLD.shape[1:])}"
        )
    return long_NLD.float().mean(0) - short_NLD.float().mean(0)


def short_unit_direction(v_LD: torch.Tensor) -> torch.Tensor:
    """u_ℓ = −v_ℓ / ‖v_ℓ‖: the unit "short thinking" direction per layer (the official code negates the
    normalised length direction before scoring and editing). [L, D] -> [L, D] fp32."""
    if v_LD.ndim != 2:
        raise ValueError(f"direction must be [L, D], got {tuple(v_LD.shape)}")
    norms_L = v_LD.float().norm(dim=-1)
    for layer, n in enumerate(norms_L.tolist()):
        if not n > 0 or not math.isfinite(n):
            raise ValueError(f"length direction of layer {layer} has norm {n}: cannot normalise it")
    return -v_LD.float() / norms_L[:, None]


def head_writes(o_in_NF: torch.Tensor, W_DF: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Each head's write into the residual stream: writes[n, h] = W[:, hK:(h+1)K] @ o_in[n, hK:(h+1)K].
    Their sum over heads is o_proj's output without bias, o_in @ Wᵀ. [N, F], [D, F] -> [N, H, D] fp32."""
    if o_in_NF.ndim != 2 or W_DF.ndim != 2 or o_in_NF.shape[1] != W_DF.shape[1]:
        raise ValueError(f"need o_in [N, F] and W [D, F], got {tuple(o_in_NF.shape)} and {tuple(W_DF.shape)}")
    K = _head_dim(W_DF.shape[1], num_heads)
    o_NHK = o_in_NF.float().reshape(o_in_NF.shape[0], num_heads, K)
    W_DHK = W_DF.float().reshape(W_DF.shape[0], num_heads, K)
    return torch.einsum("nhk,dhk->nhd", o_NHK, W_DHK)


def head_contributions(o_in_NLF: torch.Tensor, W_LDF: torch.Tensor, u_LD: torch.Tensor, num_heads: int) -> torch.Tensor:
    """scores[ℓ, h] = mean over examples of ⟨write of head h in layer ℓ, u_ℓ⟩ (`find_short_thinking_attn_heads.py`,
    which scores on the short-thinking examples only). A head's write is linear in o_proj's input, so averaging
    o_in over positions (done upstream) and over examples first gives exactly the mean of the per-position
    dot products. Computed as ūᵀW_ℓ (a row of F) times the mean o_in, head block by head block, one layer at a
    time, so no fp32 copy of all of W is made. [N, L, F], [L, D, F], [L, D] -> [L, H] fp32."""
    if o_in_NLF.ndim != 3 or W_LDF.ndim != 3 or u_LD.ndim != 2:
        raise ValueError("need o_in [N, L, F], W [L, D, F] and u [L, D]")
    N, L, F = o_in_NLF.shape
    if N == 0:
        raise ValueError("need at least one example to score heads")
    if W_LDF.shape[0] != L or W_LDF.shape[2] != F or tuple(u_LD.shape) != (L, W_LDF.shape[1]):
        raise ValueError(
            f"shapes disagree: o_in {tuple(o_in_NLF.shape)}, W {tuple(W_LDF.shape)}, u {tuple(u_LD.shape)}"
        )
    K = _head_dim(F, num_heads)
    mean_LF = o_in_NLF.float().mean(0)
    scores = []
    for layer in range(L):
        along_F = u_LD[layer].float() @ W_LDF[layer].float()  # uᵀW: what each input feature writes along u
        scores.append((along_F * mean_LF[layer]).reshape(num_heads, K).sum(-1))
    return torch.stack(scores)


def select_heads(scores_LH: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """The k (layer, head) pairs with the highest score, highest first; equal scores in (layer, head) order."""
    if scores_LH.ndim != 2:
        raise ValueError(f"scores must be [L, H], got {tuple(scores_LH.shape)}")
    L, H = scores_LH.shape
    if not 1 <= k <= L * H:
        raise ValueError(f"k must be in [1, {L * H}] (layers × heads), got {k}")
    if not torch.isfinite(scores_LH).all():
        raise ValueError("head scores contain NaN or infinity")
    # A stable sort keeps row-major (layer, head) order among equal scores.
    order = torch.sort(scores_LH.reshape(-1).float(), descending=True, stable=True).indices[:k].tolist()
    return [(i // H, i % H) for i in order]


def heads_for_fraction(num_layers: int, num_heads: int, fraction: float) -> int:
    """max(1, round(fraction · L · H)): how many heads to edit. The official release edits 10 of 336 heads of
    DeepSeek-R1-Distill-Qwen-1.5B (3.0%), 20 of 1024 of the Llama-8B distill (2.0%), 40 of 1920 of the 14B
    (2.1%) (`get_ThinkEdit_models.py`); `find_short_thinking_attn_heads.py` prints the top 20 for 1.5B (6%)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * num_layers * num_heads))


def remove_projection(W_DK: torch.Tensor, u_D: torch.Tensor) -> torch.Tensor:
    """(I − ûûᵀ)·W with û = u/‖u‖: W's columns lose their component along u, so ûᵀW becomes 0
    (`get_ThinkEdit_models.py::remove_projection_along_v` at intervention weight 1, written there on Wᵀ).
    Idempotent; invariant to u's scale and sign. Computed in fp32, returned in W's dtype. [D, K], [D] -> [D, K]."""
    if W_DK.ndim != 2 or u_D.ndim != 1 or W_DK.shape[0] != u_D.shape[0]:
        raise ValueError(f"need W [D, K] and u [D], got {tuple(W_DK.shape)} and {tuple(u_D.shape)}")
    u_hat = _unit(u_D.to(W_DK.device))
    W = W_DK.float()
    return (W - torch.outer(u_hat, u_hat @ W)).to(W_DK.dtype)


def apply_thinkedit(model: Any, heads: list[tuple[int, int]], u_LD: torch.Tensor) -> list[dict[str, Any]]:
    """Edit the model in place: for each (ℓ, h), o_proj.weight[:, hK:(h+1)K] ← remove_projection(block, u_ℓ).
    Nothing else changes, not even the other columns of an edited o_proj. Returns one record per head:
    layer, head, change_norm (Frobenius norm of the block's change; equals before_along_u up to rounding, since
    ‖ûûᵀW‖ = ‖ûᵀW‖) and before_along_u / after_along_u (‖ûᵀW‖ of the block before and after)."""
    layout = layout_of(model)
    _check_direction(u_LD, layout, "u")
    seen: set[tuple[int, int]] = set()
    for layer, head in heads:
        if not (0 <= layer < layout.num_layers and 0 <= head < layout.num_heads):
            raise LenrlError(
                f"head ({layer}, {head}) out of range: the model has {layout.num_layers} layers of "
                f"{layout.num_heads} heads"
            )
        if (layer, head) in seen:
            raise LenrlError(f"head ({layer}, {head}) is listed twice")
        if not float(u_LD[layer].float().norm()) > 0:
            raise LenrlError(f"direction u of layer {layer} is zero or not finite: nothing to project out")
        seen.add((layer, head))
    layers = decoder_layers(model)
    report = []
    with torch.no_grad():
        for layer, head in heads:
            weight = layers[layer].self_attn.o_proj.weight
            cols = slice(head * layout.head_dim, (head + 1) * layout.head_dim)
            block = weight[:, cols]
            u_hat = _unit(u_LD[layer].to(weight.device))
            edited = remove_projection(block, u_hat)
            record = {
                "layer": layer,
                "head": head,
                "change_norm": float((edited.float() - block.float()).norm()),
                "before_along_u": float((u_hat @ block.float()).norm()),
                "after_along_u": float((u_hat @ edited.float()).norm()),
            }
            block.copy_(edited)  # a view: writes into o_proj.weight itself
            report.append(record)
    return report


def steering_bias(v_LD: torch.Tensor, alpha: float, layers: list[int]) -> dict[int, torch.Tensor]:
    """{ℓ: α·v_ℓ} for the chosen layers: the vector steering adds to a site's output at every position
    (ThinkEdit §3.2, `thinking_length_steering_gsm8k.py`: the raw direction, α in ±0.08; α > 0 thinks longer)."""
    if v_LD.ndim != 2:
        raise ValueError(f"direction must be [L, D], got {tuple(v_LD.shape)}")
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    bad = [layer for layer in layers if not 0 <= layer < v_LD.shape[0]]
    if bad:
        raise ValueError(f"layer {bad[0]} out of range: the direction has {v_LD.shape[0]} layers")
    return {layer: alpha * v_LD[layer].float() for layer in layers}


# Which linear layers get a bias at each steering site: the zero ones exist only because the config flag
# gives all of them a bias in both transformers and vLLM's Llama; the last one carries α·v.
_SITES = {
    "attn": ("attention_bias", "self_attn", ("q_proj", "k_proj", "v_proj"), "o_proj"),
    "mlp": ("mlp_bias", "mlp", ("gate_proj", "up_proj"), "down_proj"),
}


def add_steering_bias(model: Any, biases: dict[int, torch.Tensor], site: str) -> None:
    """Bake steering into a Llama model as biases, so any loader (vLLM included) serves it unchanged.

    site "attn": sets config.attention_bias, gives q/k/v_proj of every layer a zero bias and o_proj the bias
    α·v_ℓ (zero on layers not in `biases`), i.e. the attention output gains α·v_ℓ at every position. Site "mlp":
    config.mlp_bias, zero gate/up_proj biases, down_proj bias α·v_ℓ. Biases a layer already has are kept
    (α·v_ℓ is added to o_proj's / down_proj's). Only model_type "llama": the other supported families build
    o_proj (and down_proj) without a bias whatever the config says (transformers' Qwen2 and Mistral, vLLM's
    Qwen3), so a bias written there would be dropped on load."""
    if site not in _SITES:
        raise LenrlError(f"steering site must be one of {', '.join(_SITES)}, got {site!r}")
    model_type = getattr(model.config, "model_type", None)
    if model_type != "llama":
        raise LenrlError(f"steering biases can be written into llama models only, got model_type {model_type!r}")
    layout = layout_of(model)
    for layer, bias in biases.items():
        if not 0 <= layer < layout.num_layers:
            raise LenrlError(f"steering layer {layer} out of range: the model has {layout.num_layers} layers")
        if tuple(bias.shape) != (layout.hidden_size,) or not torch.isfinite(bias).all():
            raise LenrlError(
                f"steering bias of layer {layer} must be finite with shape ({layout.hidden_size},), "
                f"got {tuple(bias.shape)}"
            )
    flag, block_name, zero_names, out_name = _SITES[site]
    with torch.no_grad():
        for layer, module in enumerate(decoder_layers(model)):
            block = getattr(module, block_name)
            for name in zero_names:
                _ensure_bias(getattr(block, name))
            out_bias = _ensure_bias(getattr(block, out_name))
            if layer in biases:
                out_bias.add_(biases[layer].to(device=out_bias.device, dtype=out_bias.dtype))
    setattr(model.config, flag, True)


def _ensure_bias(linear: torch.nn.Linear) -> torch.nn.Parameter:
    """The linear layer's bias, created as zeros (weight's dtype and device) when it has none."""
    if linear.bias is None:
        w = linear.weight
        linear.bias = torch.nn.Parameter(
            torch.zeros(w.shape[0], dtype=w.dtype, device=w.device), requires_grad=w.requires_grad
        )
    return linear.bias


def _head_dim(features: int, num_heads: int) -> int:
    if num_heads <= 0 or features % num_heads:
        raise ValueError(f"{features} o_proj input features do not split into {num_heads} heads")
    return features // num_heads


def _unit(u_D: torch.Tensor) -> torch.Tensor:
    norm = float(u_D.float().norm())
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"direction has norm {norm}: cannot normalise it")
    return u_D.float() / norm


def _check_direction(u_LD: torch.Tensor, layout: AttentionLayout, name: str) -> None:
    if tuple(u_LD.shape) != (layout.num_layers, layout.hidden_size):
        raise LenrlError(
            f"direction {name} has shape {tuple(u_LD.shape)}, the model needs "
            f"(layers, hidden_size) = ({layout.num_layers}, {layout.hidden_size})"
        )

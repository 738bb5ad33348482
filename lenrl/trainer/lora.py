"""LoRA on the learner's policy, through peft (`model.lora`).

Only the adapters train; the base weights stay the starting model's, which is also the KL reference (the
same model with its adapters switched off: no second copy in memory). The rollout engines never see
adapters: they receive merged weights W + (alpha / r) B A in the base model's names, computed beside the
model (merging in place and back would add float round-off to W at every step). Checkpoints hold that
merged model (what vLLM and transformers load) and the adapter in `adapter/` (what resume loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lenrl.config import LoraSettings

ADAPTER_DIR = "adapter"


def wrap(model: Any, spec: LoraSettings) -> Any:
    """`model` with LoRA adapters of `spec` on its target modules; only the adapters require grad."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@torch.no_grad()
def merged_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's weights with every adapted weight replaced by W + delta, in the base model's (HF)
    names and on the model's device, one at a time (a merged weight exists only while it is consumed);
    the model itself is not modified."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    adapted: dict[str, Any] = {f"{n}.weight": m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        name = key.replace(".base_layer.", ".")
        layer = adapted.get(name)
        if layer is None:
            yield name, value.detach()
        else:  # lora.Linear and kin: each has get_delta_weight
            [adapter] = layer.active_adapters
            yield name, (layer.base_layer.weight + layer.get_delta_weight(adapter)).detach()


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """`merged_weights` collected into a state dict on CPU."""
    return {k: v.to("cpu", copy=True) for k, v in merged_weights(model)}


def save(model: Any, out: Path) -> None:
    """The merged model as an HF directory in `out`, and the adapter in `out/adapter`."""
    model.get_base_model().save_pretrained(out, state_dict=merged_state_dict(model))
    model.save_pretrained(out / ADAPTER_DIR)


def load_adapter(model: Any, checkpoint: Path) -> None:
    """Set the adapter weights from a checkpoint written by `save`."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(checkpoint / ADAPTER_DIR / "adapter_model.safetensors"))
    result: Any = set_peft_model_state_dict(model, state)
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing:
        raise RuntimeError(f"{checkpoint / ADAPTER_DIR}: adapter weights missing: {missing[:3]}")

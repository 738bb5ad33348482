"""Tiny random-initialised Llama models around the real SmolLM2 tokenizer, for fast CPU tests.

head_dim 64 keeps vLLM's CPU attention backend happy; two layers keep a forward pass in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_llama(out_dir: Path, tokenizer_dir: Path, *, seed: int = 0, hidden: int = 128) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        head_dim=64,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger-than-default init so sampling is not near-uniform over 49k tokens
        model.lm_head.weight.normal_(0, 0.1)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir

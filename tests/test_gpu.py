"""The GPU path, run where CUDA is present (skipped elsewhere): `python -m pytest -m gpu` on a GPU machine
installed with `LENRL_GPU=1 bash launch/install.sh`.

What only a GPU exercises: the learner's default precision there (bf16 autocast over fp32 master weights),
weights shipped to the engines from device memory in buckets, CUDA RNG in checkpoints, peak memory read
from the device, and a whole run with the learner and the CUDA vLLM engine sharing one GPU through Ray's
fractional GPU resources.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lenrl.config import AlgoConfig, TrainConfig
from lenrl.records import Rollout, RolloutBatch
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.learner import Learner, MiniBatch
from lenrl.trainer.logprobs import response_logprobs

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _batch():
    rs = [
        Rollout(g, prompt, resp, [-1.0] * len(resp), "stop", 16, 0, "", 0)
        for g, (prompt, responses) in enumerate([([5, 6, 7], [[8, 9], [10, 11, 12, 13]]), ([20], [[21], [22, 23]])])
        for resp in responses
    ]
    return build_train_batch(RolloutBatch.from_rollouts(rs), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)


def _learner(model_dir: Path) -> Learner:
    return Learner(
        str(model_dir), AlgoConfig(kl_coef=0.1), TrainConfig(lr=1e-2), dtype="auto", temperature=1.0, max_len=16
    )


def test_the_default_gpu_learner_computes_in_bf16_over_fp32_masters(tiny_model_dir):
    learner = _learner(tiny_model_dir)
    assert learner.device.type == "cuda" and learner.compute_dtype == torch.bfloat16
    assert all(p.is_cuda and p.dtype == torch.float32 for p in learner.model.parameters())
    assert next(learner.ref.parameters()).dtype == torch.bfloat16
    b = _batch()
    with torch.no_grad(), learner._autocast():
        before, _ = response_logprobs(learner.model, b, temperature=1.0)
    stats = learner.update([MiniBatch.whole(b)])
    with torch.no_grad(), learner._autocast():
        after, _ = response_logprobs(learner.model, b, temperature=1.0)
    m = b.response_mask_BT.cuda()
    delta = ((after - before).float() * m).sum(1) / m.sum(1)
    assert delta[0] > 0 and delta[2] > 0 and delta[1] < 0 and delta[3] < 0
    assert all(v.dtype == torch.float32 for s in learner.opt.state.values() for v in s.values() if v.dim() > 0)
    assert 0 < stats.peak_rss_gib < 80  # torch.cuda.max_memory_allocated, in GiB
    buckets = list(learner.weight_buckets(0.05))  # small buckets: several, each copied off the device alone
    assert len(buckets) > 1
    assert all(t.device.type == "cpu" and t.dtype == torch.bfloat16 for bucket in buckets for t in bucket.values())


def test_a_gpu_checkpoint_restores_weights_optimizer_and_cuda_rng(tiny_model_dir, tmp_path):
    a = _learner(tiny_model_dir)
    a.update([MiniBatch.whole(_batch())])
    torch.cuda.manual_seed(1234)
    a.save(str(tmp_path / "ckpt"), str(tiny_model_dir))
    expected_rng = torch.cuda.get_rng_state()
    torch.cuda.manual_seed(99)
    fresh = _learner(tiny_model_dir)
    fresh.load(str(tmp_path / "ckpt"))
    assert torch.equal(torch.cuda.get_rng_state(), expected_rng)
    a.update([MiniBatch.whole(_batch())])
    fresh.update([MiniBatch.whole(_batch())])
    for (k, v), w in zip(a.model.state_dict().items(), fresh.model.state_dict().values(), strict=True):
        assert torch.allclose(v, w, atol=1e-6), k


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.vllm
def test_a_run_with_the_cuda_engine_and_learner_on_one_gpu(tiny_model_dir, tmp_path):
    """Two GRPO steps, engine and learner on fractions of one GPU; the in-place weight push keeps the
    sampler/learner log-prob gap at bf16 round-off."""
    pytest.importorskip("vllm")
    cmd = [
        sys.executable, str(REPO / "lenrl" / "train.py"), "--algo", "grpo", f"model.name={tiny_model_dir}",
        "train.steps=2", "train.prompts_per_step=2", "rollout.n=4", "rollout.max_tokens=16", "data.limit=20",
        "ray.gpus_per_rollout_worker=0.4", "ray.gpus_per_learner=0.4", "rollout.gpu_memory_utilization=0.3",
        f"output.dir={tmp_path}", "output.name=run",
        f'rewards=[{{name: "{REPO}/tests/reward_plugins.py:even_tokens"}}]',
    ]  # fmt: skip
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["sync/weight_version"] == 2 and rows[1]["sync/logp_abs_gap"] < 0.05  # bf16 both sides
    assert (tmp_path / "run" / "checkpoint" / "COMPLETE").is_file()

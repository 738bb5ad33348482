"""The learner on a tiny model without Ray: batching layout, micro-batch invariance, a real update."""

import pytest
import torch
from torch.testing import assert_close

from lenrl.config import AlgoConfig, FnSpec, TrainConfig
from lenrl.records import Rollout, RolloutBatch
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.learner import Learner, MiniBatch
from lenrl.trainer.logprobs import response_logprobs


def _rollouts():
    rs = []
    for g, (prompt, responses) in enumerate([([5, 6, 7], [[8, 9], [10, 11, 12, 13]]), ([20], [[21], [22, 23, 24]])]):
        for resp in responses:
            rs.append(Rollout(g, prompt, resp, [-1.0] * len(resp), "stop", 16, 0, "", 0))
    return RolloutBatch.from_rollouts(rs)


def _learner(tiny_model_dir, algo: AlgoConfig, train: TrainConfig) -> Learner:
    """A fp32 learner on the tiny model, sampling temperature 1, 16-token budget."""
    return Learner(str(tiny_model_dir), algo, train, dtype="float32", temperature=1.0, max_len=16)


def test_batch_layout_left_pads_prompts_and_right_pads_responses():
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.5, -0.5]), pad_id=2)
    assert b.input_ids_BL.shape == (4, 3 + 4)
    assert b.input_ids_BL[2].tolist() == [2, 2, 20, 21, 2, 2, 2]
    assert b.attention_mask_BL[2].tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert b.response_mask_BT.sum(1).tolist() == [2, 4, 1, 3]
    sub = b.select(slice(2, 4))  # group 1 only: one prompt column, three response columns
    assert sub.input_ids_BL.tolist() == [[20, 21, 2, 2], [20, 22, 23, 24]]
    assert sub.num_tokens == 4


def test_logprobs_match_a_plain_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    b = build_train_batch(_rollouts(), torch.zeros(4), pad_id=2)
    logp, ent = response_logprobs(model, b, temperature=0.7, with_entropy=True)
    # row 1 alone, unpadded: prompt [5, 6, 7] + response [10, 11, 12, 13]
    ids = torch.tensor([[5, 6, 7, 10, 11, 12, 13]])
    ref = (model(ids).logits[0, 2:-1] / 0.7).log_softmax(-1).gather(1, ids[0, 3:, None])[:, 0]
    assert_close(logp[1], ref, atol=1e-5, rtol=1e-5)
    assert (ent[b.response_mask_BT] > 0).all()


def _grads(tiny_model_dir, micro_batch_size, aggregation):
    algo = AlgoConfig(aggregation=FnSpec(aggregation))
    learner = _learner(tiny_model_dir, algo, TrainConfig(micro_batch_size=micro_batch_size, lr=1e-3))
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.5, -0.5]), pad_id=2)
    grads = {}

    def step():  # capture gradients instead of stepping
        grads.update({n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None})
        return 0.0

    learner._optimizer_step = step
    stats = learner.update([MiniBatch.whole(b)])
    return grads, stats


def test_micro_batching_does_not_change_the_gradient(tiny_model_dir):
    for agg in ("token_mean", "seq_mean_token_mean"):
        whole, s1 = _grads(tiny_model_dir, 4, agg)
        micro, s2 = _grads(tiny_model_dir, 1, agg)
        for name in whole:
            assert_close(micro[name], whole[name], atol=1e-5, rtol=1e-3)
        assert abs(s1.loss - s2.loss) < 1e-6


def test_update_moves_logprobs_in_the_direction_of_the_advantage(tiny_model_dir):
    learner = _learner(tiny_model_dir, AlgoConfig(kl_coef=0.1), TrainConfig(lr=1e-2))
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)
    before, _ = response_logprobs(learner.model, b, temperature=1.0)
    stats = learner.update([MiniBatch.whole(b)])
    after, _ = response_logprobs(learner.model, b, temperature=1.0)
    m = b.response_mask_BT
    delta = ((after - before) * m).sum(1) / m.sum(1)
    assert delta[0] > 0 and delta[2] > 0 and delta[1] < 0 and delta[3] < 0
    assert stats.kl_ref == 0.0 and stats.tokens == 10 and stats.grad_norm > 0


def test_drpo_group_loss_through_the_learner_is_micro_batch_invariant(tiny_model_dir):
    correct = torch.tensor([True, False, False, True])

    def grads(mbs):
        algo = AlgoConfig(loss=FnSpec("drpo", {"lam": 0.1}))
        learner = _learner(tiny_model_dir, algo, TrainConfig(micro_batch_size=mbs, lr=1e-3))
        b = build_train_batch(_rollouts(), torch.zeros(4), pad_id=2, correct_B=correct)
        out = {}
        learner._optimizer_step = lambda: (
            out.update({n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None}) or 0.0
        )
        stats = learner.update([MiniBatch.whole(b)])
        return out, stats

    whole, s1 = grads(4)
    micro, s2 = grads(2)  # one whole group per micro-batch
    for name in whole:
        assert_close(micro[name], whole[name], atol=1e-5, rtol=1e-3)
    assert s1.loss == pytest.approx(s2.loss, abs=1e-6) and s1.clipfrac == 0.0
    assert any(g.abs().sum() > 0 for g in whole.values())

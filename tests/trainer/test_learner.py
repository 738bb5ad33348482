"""The learner on a tiny model without Ray: batching layout, micro-batch invariance, a real update."""

import math

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


def test_a_nonfinite_update_is_skipped_and_leaves_weights_and_optimizer_alone(tiny_model_dir):
    learner = _learner(tiny_model_dir, AlgoConfig(kl_coef=0.0), TrainConfig(lr=1e-2))
    good = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)
    learner.update([MiniBatch.whole(good)])
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in learner.opt.state.values()]
    bad = build_train_batch(_rollouts(), torch.tensor([float("nan"), -1.0, 1.0, -1.0]), pad_id=2)
    stats = learner.update([MiniBatch.whole(bad)])
    assert stats.nonfinite_skipped == 1 and not math.isfinite(stats.grad_norm)
    for k, v in learner.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, learner.opt.state.values(), strict=True))
    assert learner.update([MiniBatch.whole(good)]).nonfinite_skipped == 0  # and the next one trains again


def test_checkpoint_round_trip_continues_the_same_trajectory(tiny_model_dir, tmp_path):
    """save -> load into a fresh learner: the next update gives bit-identical weights (AdamW moments and
    step count restored, not re-initialised), and the lr argument sets the step's rate."""
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)
    a = _learner(tiny_model_dir, AlgoConfig(kl_coef=0.0), TrainConfig(lr=1e-2))
    a.update([MiniBatch.whole(b)], lr=5e-3)
    a.save(str(tmp_path / "ckpt"), str(tiny_model_dir))
    fresh = _learner(tiny_model_dir, AlgoConfig(kl_coef=0.0), TrainConfig(lr=1e-2))
    fresh.load(str(tmp_path / "ckpt"))
    for learner in (a, fresh):
        learner.update([MiniBatch.whole(b)], lr=2e-3)
        assert learner.opt.param_groups[0]["lr"] == 2e-3
    for (k, v), w in zip(a.model.state_dict().items(), fresh.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_lora_trains_only_the_adapters_and_ships_merged_weights(tiny_model_dir, tmp_path):
    """After an update only adapter parameters changed; the engines' merged weights give the same log-probs
    as the adapted policy (float round-off); the KL reference is the untouched base; a checkpoint holds a
    merged HF model that transformers loads, and the adapter that resume loads."""
    from transformers import AutoModelForCausalLM

    from lenrl.config import LoraSettings

    spec = LoraSettings(rank=4, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    learner = Learner(
        str(tiny_model_dir), AlgoConfig(kl_coef=0.1), TrainConfig(lr=1e-2), dtype="float32", temperature=1.0,
        max_len=16, lora=spec,
    )  # fmt: skip
    assert learner.ref is None  # no second model in memory
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)
    learner.update([MiniBatch.whole(b)])
    stats = learner.update([MiniBatch.whole(b)])
    changed = {k for k, v in learner.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".lora_" in k for k in changed)
    assert stats.kl_ref > 0  # the adapted policy has moved away from its base

    merged = {k: v for bucket in learner.weight_buckets(0) for k, v in bucket.items()}  # one bucket: all
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    assert set(merged) == set(plain.state_dict())  # the engines' names: no lora or base_layer keys
    plain.load_state_dict(merged)
    ours, _ = response_logprobs(learner.model, b, temperature=1.0)
    theirs, _ = response_logprobs(plain, b, temperature=1.0)
    assert_close(ours * b.response_mask_BT, theirs * b.response_mask_BT, atol=1e-5, rtol=0)

    learner.save(str(tmp_path / "ckpt"), str(tiny_model_dir))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ckpt"), dtype=torch.float32)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, merged[k]), k
    fresh = Learner(
        str(tiny_model_dir), AlgoConfig(kl_coef=0.1), TrainConfig(lr=1e-2), dtype="float32", temperature=1.0,
        max_len=16, lora=spec,
    )  # fmt: skip
    fresh.load(str(tmp_path / "ckpt"))
    for (k, v), w in zip(learner.model.state_dict().items(), fresh.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_bf16_compute_keeps_fp32_master_weights(tiny_model_dir):
    """dtype=bfloat16 (the GPU default): forward passes run under autocast in bf16, the trained weights and
    AdamW's moments stay fp32, the reference is stored in bf16, and the engines get bf16 weights. Same code
    on CPU (autocast supports bf16 there), only slower."""
    learner = Learner(
        str(tiny_model_dir), AlgoConfig(kl_coef=0.1), TrainConfig(lr=1e-2), dtype="bfloat16", temperature=1.0,
        max_len=16,
    )  # fmt: skip
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=2)
    before, _ = response_logprobs(learner.model, b, temperature=1.0)
    stats = learner.update([MiniBatch.whole(b)])
    after, _ = response_logprobs(learner.model, b, temperature=1.0)
    assert all(p.dtype == torch.float32 for p in learner.model.parameters())
    assert all(v.dtype == torch.float32 for s in learner.opt.state.values() for v in s.values() if v.dim() > 0)
    assert next(learner.ref.parameters()).dtype == torch.bfloat16
    assert {v.dtype for b in learner.weight_buckets(0) for v in b.values()} == {torch.bfloat16}
    m = b.response_mask_BT
    delta = ((after - before) * m).sum(1) / m.sum(1)
    assert delta[0] > 0 and delta[2] > 0 and delta[1] < 0 and delta[3] < 0 and stats.kl_ref >= 0


def test_async_steps_take_the_ratio_against_the_sampler_logprobs(tiny_model_dir):
    """Behaviour log-probs 0.1 below the learner's on every token: ratio e^0.1 (inside the 0.2 clip), so
    the token-mean loss -mean(r A) is e^0.1 times the synchronous one (ratio 1)."""
    from dataclasses import replace

    algo = AlgoConfig(aggregation=FnSpec("token_mean"))
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.5, -0.5]), pad_id=2)
    current, _ = response_logprobs(_learner(tiny_model_dir, algo, TrainConfig()).model, b, temperature=1.0)
    b = replace(b, sampler_logp_BT=torch.where(b.response_mask_BT, current.detach() - 0.1, 0.0))
    sync = _learner(tiny_model_dir, algo, TrainConfig(lr=1e-3)).update([MiniBatch.whole(b)])
    behind = _learner(tiny_model_dir, algo, TrainConfig(lr=1e-3, async_steps=1)).update([MiniBatch.whole(b)])
    assert sync.loss != 0.0
    assert behind.loss == pytest.approx(math.exp(0.1) * sync.loss, rel=1e-5)
    assert behind.clipfrac == 0.0 and behind.logp_gap == pytest.approx(0.1, abs=1e-5)

"""Length-bucketed micro-batches: the plan by hand, and the gradient it gives equals the one-pass gradient."""

import torch
from torch.testing import assert_close

from lenrl.config import AlgoConfig, FnSpec, TrainConfig
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.learner import Learner, MiniBatch
from lenrl.trainer.microbatch import padding_fraction, plan_micro_batches


def _plan(prompt, response, group, **kw):
    t = torch.tensor
    return [p.tolist() for p in plan_micro_batches(t(prompt), t(response), t(group), **kw)]


def test_rows_are_sorted_longest_first_and_cut_by_padded_size():
    # widths (prompt + response): 12, 4, 10, 3 -> order 0, 2, 1, 3
    # [0]: 1 x 12 = 12; + row 2: 2 x 12 = 24 > 20 -> new; [2]+[1]: 2 x 10 = 20 fits; + row 3: 30 > 20 -> new
    plan = _plan([2, 2, 2, 1], [10, 2, 8, 2], [0, 0, 1, 1], max_rows=8, max_tokens=20, whole_groups=False)
    assert plan == [[0], [1, 2], [3]]
    # no token cap: rows only
    assert _plan([2, 2, 2, 1], [10, 2, 8, 2], [0, 0, 1, 1], max_rows=3, max_tokens=0, whole_groups=False) == [
        [0, 1, 2],
        [3],
    ]


def test_group_units_stay_whole_and_an_oversized_unit_gets_its_own_micro_batch():
    # groups {0,1} width 12, {2,3} width 10; each group alone is 24 or 20 padded positions
    plan = _plan([2, 2, 2, 1], [10, 2, 8, 2], [0, 0, 1, 1], max_rows=8, max_tokens=20, whole_groups=True)
    assert plan == [[0, 1], [2, 3]]
    assert _plan([2, 2, 2, 1], [10, 2, 8, 2], [0, 0, 1, 1], max_rows=8, max_tokens=48, whole_groups=True) == [
        [0, 1, 2, 3]
    ]


def test_kept_groups_stay_together_where_they_fit_and_are_cut_where_they_do_not():
    # group 0: rows 0, 1, 2 (widths 12, 4, 11); group 1: rows 3, 4 (widths 3, 5); cap 2 rows, 30 positions
    args = ([2, 2, 2, 1, 1], [10, 2, 9, 2, 4], [0, 0, 0, 1, 1])
    # group 0 is cut into [0, 2] (2 x 12 = 24) and [1]; group 1 fits whole; pieces packed by width
    assert _plan(*args, max_rows=2, max_tokens=30, whole_groups=False, keep_groups=True) == [[0, 2], [3, 4], [1]]
    # rows alone mix the groups: row 4 (width 5) is packed beside row 1 (width 4)
    assert _plan(*args, max_rows=2, max_tokens=30, whole_groups=False) == [[0, 2], [1, 4], [3]]


def test_padding_fraction_counts_padded_positions():
    assert padding_fraction([(8, 6), (2, 1)]) == 1 - 7 / 10
    assert padding_fraction([]) == 0.0


def _rollouts():
    from lenrl.records import Rollout, RolloutBatch

    lengths = [[1, 9], [7, 2], [3, 8]]  # mixed lengths inside each group, as under length control
    rs = []
    for g, group in enumerate(lengths):
        for i, n in enumerate(group):
            resp = [10 + (g * 7 + i * 3 + k) % 40 for k in range(n)]
            rs.append(Rollout(g, [5 + g, 6], resp, [-1.0] * n, "stop", 16, 0, "", 0))
    return RolloutBatch.from_rollouts(rs)


def _grads(tiny_model_dir, algo, **train):
    train_cfg = TrainConfig(lr=1e-3, **train)
    learner = Learner(str(tiny_model_dir), algo, train_cfg, dtype="float32", temperature=1.0, max_len=16)
    correct = torch.tensor([True, False, False, True, True, True])
    b = build_train_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.5, -0.5, 0.3, -0.2]), pad_id=2, correct_B=correct)
    out: dict[str, torch.Tensor] = {}

    def step():  # capture the gradient instead of stepping
        out.update({n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None})
        return 0.0

    learner._optimizer_step = step
    return out, learner.update([MiniBatch.whole(b)])


def test_bucketed_micro_batches_give_the_one_pass_loss_and_gradient(tiny_model_dir):
    # fp32 on a tiny model: sums regrouped differ by float round-off only (measured < 1e-6 absolute)
    for algo in (AlgoConfig(), AlgoConfig(aggregation=FnSpec("seq_mean_token_mean")), AlgoConfig(loss=FnSpec("drpo"))):
        whole, s1 = _grads(tiny_model_dir, algo, micro_batch_size=6)
        bucketed, s2 = _grads(tiny_model_dir, algo, micro_batch_size=6, micro_batch_tokens=24)
        assert s2.pad_frac < s1.pad_frac  # the point of bucketing
        for name in whole:
            assert_close(bucketed[name], whole[name], atol=1e-5, rtol=1e-3)
        assert abs(s1.loss - s2.loss) < 1e-6
        assert s1.fwd_tokens == s2.fwd_tokens == 6 * 2 + 30


def test_shared_prefixes_give_the_padded_loss_and_gradient_through_the_learner(tiny_model_dir):
    # fp32: equal to float round-off (tests/trainer/test_logprobs.py checks the forward itself in float64)
    for algo in (AlgoConfig(), AlgoConfig(loss=FnSpec("drpo")), AlgoConfig(kl_coef=0.1)):
        padded, s1 = _grads(tiny_model_dir, algo, micro_batch_size=6, shared_prefix=False)
        shared, s2 = _grads(tiny_model_dir, algo, micro_batch_size=6, micro_batch_tokens=24)
        for name in padded:
            assert (shared[name] - padded[name]).norm() <= 5e-5 * padded[name].norm(), name
        assert abs(s1.loss - s2.loss) < 1e-6 and abs(s1.entropy - s2.entropy) < 1e-5
        assert s1.fwd_tokens == s2.fwd_tokens  # the same logical tokens: prompts counted once per row
        assert s2.pad_frac < s1.pad_frac

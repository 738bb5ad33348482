import torch
from torch.testing import assert_close

from lenrl.algos import ADVANTAGES, AdvantageInput


def _x(rewards, groups):
    r = torch.tensor(rewards, dtype=torch.float32)
    return AdvantageInput(
        r, torch.tensor(groups), torch.ones(len(r), dtype=torch.long), torch.zeros(len(r), dtype=torch.bool)
    )


def test_grpo_hand_computed():
    # group 0: [1, 0] mean .5, unbiased std sqrt(.5) ; group 1: [0, 1]
    adv = ADVANTAGES.get("grpo")(_x([1, 0, 0, 1], [0, 0, 7, 7]), eps=0.0)
    s = 0.5 / 0.5**0.5
    assert_close(adv, torch.tensor([s, -s, -s, s]))


def test_grpo_uniform_group_is_zero_and_singleton_is_zero():
    adv = ADVANTAGES.get("grpo")(_x([1, 1, 1, 3], [0, 0, 0, 1]))
    assert_close(adv, torch.zeros(4))


def test_mean_only_equals_grpo_times_std():  # Dr. GRPO = GRPO without the std division
    x = _x([1.0, 0.0, 0.5, 2.0, 0.0, 1.0], [0, 0, 0, 1, 1, 1])
    mo = ADVANTAGES.get("mean_only")(x)
    assert_close(mo, torch.tensor([0.5, -0.5, 0.0, 1.0, -1.0, 0.0]))
    std = torch.tensor([0.5] * 3 + [1.0] * 3)
    assert_close(ADVANTAGES.get("grpo")(x, eps=0.0) * std, mo)


def test_rloo_hand_computed_and_relation_to_mean_only():
    x = _x([1.0, 0.0, 0.0], [3, 3, 3])
    r = ADVANTAGES.get("rloo")(x)
    assert_close(r, torch.tensor([1.0, -0.5, -0.5]))  # 1 - mean(0,0); 0 - mean(1,0)
    assert_close(r, 3 / 2 * ADVANTAGES.get("mean_only")(x))


def test_group_ids_need_not_be_contiguous():
    a = ADVANTAGES.get("mean_only")(_x([1, 5, 0, 3], [0, 1, 0, 1]))
    assert_close(a, torch.tensor([0.5, 1.0, -0.5, -1.0]))


def test_group_mean_batch_whiten_hand_computed_response_weighted():
    # centred: [.5, -.5, 0, 0]; mean 0; unbiased var = (.25 + .25) / 3
    x = _x([1, 0, 2, 2], [0, 0, 1, 1])
    a = ADVANTAGES.get("group_mean_batch_whiten")(x, weighting="response", eps=0.0)
    s = (0.5 / 3) ** 0.5
    assert_close(a, torch.tensor([0.5 / s, -0.5 / s, 0.0, 0.0]))


def test_group_mean_batch_whiten_token_weighting_counts_tokens():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    x = AdvantageInput(r, torch.tensor([0, 0, 1, 1]), torch.tensor([3, 1, 1, 1]), torch.zeros(4, dtype=torch.bool))
    a = ADVANTAGES.get("group_mean_batch_whiten")(x, weighting="token", eps=0.0)
    # centred c = [.5, -.5, .5, -.5], weights [3, 1, 1, 1]: mu = (1.5 - .5 + .5 - .5) / 6 = 1/6
    c, w = torch.tensor([0.5, -0.5, 0.5, -0.5], dtype=torch.float64), torch.tensor([3.0, 1, 1, 1], dtype=torch.float64)
    mu = (w * c).sum() / 6
    var = (w * (c - mu) ** 2).sum() / 5
    assert_close(a, ((c - mu) / var.sqrt()).float())
    assert abs(float((a.double() * w).sum())) < 1e-5  # zero token-weighted mean


def test_batch_whiten_with_group_std_replaced_is_grpo():
    """DLER's estimator divides by a batch statistic; using each group's own std instead gives GRPO."""
    from lenrl.algos.advantages import group_stats

    x = _x([1.0, 0.0, 0.0, 3.0, 1.0, 2.0], [0, 0, 0, 1, 1, 1])
    mean_B, std_B, _ = group_stats(x.rewards_B, x.group_id_B)
    assert_close((x.rewards_B - mean_B) / (std_B + 1e-6), ADVANTAGES.get("grpo")(x, eps=1e-6))
    a = ADVANTAGES.get("group_mean_batch_whiten")(x, weighting="response", eps=0.0)
    c = x.rewards_B - mean_B
    assert_close(a * c.std(), c, atol=1e-6, rtol=1e-5)  # same centring as GRPO, one batch-wide scale

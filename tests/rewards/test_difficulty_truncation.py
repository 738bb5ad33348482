"""DA-DLER's difficulty tiers, hand-computed, and its relation to plain DLER."""

import torch
from torch.testing import assert_close

import rewards  # noqa: F401  (registers the built-ins)
from lenrl.reward import REWARDS
from tests.rewards._inputs import make_input, sample

da = REWARDS.get("difficulty_truncation")


def test_easy_group_gets_the_short_tier_hard_group_keeps_the_budget():
    x = make_input(
        [
            # group 0: 3 of 4 correct (p = .75 >= .5): cap 50 of budget 100
            sample(True, 40, 0),
            sample(True, 60, 0),
            sample(True, 80, 0),
            sample(False, 70, 0),
            # group 1: 1 of 4 correct (p = .25): cap stays 100
            sample(True, 90, 1),
            sample(False, 20, 1),
            sample(False, 30, 1),
            sample(False, 100, 1),
        ],
        budget=100,
    )
    out = da(x)
    assert_close(out.score_B, torch.tensor([0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert_close(out.parts["tier_cap"], torch.tensor([50.0] * 4 + [100.0] * 4))
    assert_close(da(x, truncation_reward_scale=0.1).score_B[1], torch.tensor(-0.9))


def test_several_tiers_pick_the_highest_threshold_met():
    x = make_input([sample(True, 30, 0), sample(True, 30, 0), sample(True, 30, 1), sample(False, 10, 1)], budget=100)
    out = da(x, thresholds=[0.5, 0.9], cap_fractions=[0.5, 0.25])
    assert_close(out.parts["tier_cap"], torch.tensor([25.0, 25.0, 50.0, 50.0]))
    assert_close(out.score_B, torch.tensor([-1.0, -1.0, 0.0, 0.0]))


def test_full_cap_tier_is_plain_dler_and_never_double_penalises_truncation():
    x = make_input([sample(True, 100, 0), sample(True, 99, 0), sample(False, 50, 0)], budget=100)
    assert_close(da(x, cap_fractions=[1.0]).score_B, torch.zeros(3))  # tier = budget: nothing beyond DLER
    out = da(x, cap_fractions=[0.1])  # the truncated (100-token) response is left to `truncation`
    assert_close(out.score_B, torch.tensor([0.0, -1.0, 0.0]))

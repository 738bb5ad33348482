import math

import torch
from torch.testing import assert_close

from lenrl.algos import POLICY_LOSSES, LossInput

ppo = POLICY_LOSSES.get("ppo_clip")


def _x(ratios, advs):
    r = torch.tensor(ratios, dtype=torch.float64).unsqueeze(1)
    return LossInput(
        r.log(), torch.zeros_like(r), torch.tensor(advs, dtype=torch.float64), torch.ones_like(r, dtype=torch.bool)
    )


def test_ppo_clip_hand_computed():
    loss, m = ppo(_x([1.5, 0.5, 1.1], [1.0, -1.0, 1.0]), clip_low=0.2, clip_high=0.2)
    # r=1.5,A=1: max(-1.5, -1.2) = -1.2 (clipped); r=.5,A=-1: max(.5, .8) = .8 (clipped); r=1.1: -1.1
    assert_close(loss[:, 0], torch.tensor([-1.2, 0.8, -1.1], dtype=torch.float64))
    assert_close(m["clipfrac"][:, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_clip_higher_only_moves_upper_bound():
    loss, _ = ppo(_x([1.25, 0.7], [1.0, -1.0]), clip_low=0.2, clip_high=0.28)
    assert_close(loss[:, 0], torch.tensor([-1.25, 0.8], dtype=torch.float64))


def test_dual_clip_caps_negative_advantage_loss():
    loss, m = ppo(_x([5.0, 5.0], [-1.0, 1.0]), clip_low=0.2, clip_high=0.2, dual_clip=3.0)
    assert_close(loss[:, 0], torch.tensor([3.0, -1.2], dtype=torch.float64))
    assert_close(m["dual_clipfrac"][:, 0], torch.tensor([1.0, 0.0]))


def test_ratio_one_is_reinforce_and_gradient_is_minus_advantage():
    logp = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([2.0, -0.5], dtype=torch.float64)
    x = LossInput(logp, logp.detach(), adv, torch.ones(2, 3, dtype=torch.bool))
    loss, _ = ppo(x, clip_low=0.2, clip_high=0.28)
    assert_close(loss, -adv.unsqueeze(1).expand(2, 3))
    loss.sum().backward()
    assert_close(logp.grad, -adv.unsqueeze(1).expand(2, 3))


def test_no_dual_clip_equals_huge_dual_clip():
    x = _x([0.3, 4.0, 1.0], [-2.0, -1.0, 0.5])
    a, _ = ppo(x, clip_low=0.2, clip_high=0.2)
    b, _ = ppo(x, clip_low=0.2, clip_high=0.2, dual_clip=math.inf)
    assert_close(a, b)

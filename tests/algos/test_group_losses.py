"""DRPO (group loss): hand-computed weights and loss, the λ → ∞ relation, group filtering, micro-batch sums."""

import math

import pytest
import torch
from torch.testing import assert_close

from lenrl.algos.group_losses import GroupLossInput, drpo, drpo_weights


def test_weights_by_hand():
    # C = 10, λ = 0.5: r_l = 1 - ℓ/10 = 0.8, 0.4 -> exp(1.6), exp(0.8) normalised
    w = drpo_weights(torch.tensor([2, 6]), max_len=10, lam=0.5)
    e1, e2 = math.exp(1.6), math.exp(0.8)
    assert_close(w, torch.tensor([e1 / (e1 + e2), e2 / (e1 + e2)], dtype=torch.float64))


def test_large_lambda_gives_uniform_weights_and_small_lambda_the_shortest():
    lens = torch.tensor([3, 50, 7, 120])
    assert_close(drpo_weights(lens, max_len=128, lam=1e9), torch.full((4,), 0.25, dtype=torch.float64))
    w = drpo_weights(lens, max_len=128, lam=1e-3)
    assert w.argmax() == 0 and w[0] > 0.99


def _x(logp_rows, correct, lens, gids):
    T = max(len(r) for r in logp_rows)
    logp = torch.zeros(len(logp_rows), T)
    mask = torch.zeros(len(logp_rows), T, dtype=torch.bool)
    for i, r in enumerate(logp_rows):
        logp[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    logp.requires_grad_(True)
    return GroupLossInput(logp, logp.detach(), mask, torch.tensor(correct), torch.tensor(lens), torch.tensor(gids))


def test_loss_by_hand():
    # one group: positives s = -1 (ℓ 2), -2 (ℓ 1); negatives s = -3, -1; C = 4, λ = 1, τ = 2
    x = _x([[-1.0, -1.0], [-2.0], [-3.0], [-1.0, -1.0]], [True, True, False, False], [2, 1, 1, 2], [0, 0, 0, 0])
    loss, m = drpo(x, num_groups=2, num_tokens=6, max_len=4, lam=1.0, tau=2.0)
    w1, w2 = math.exp(0.5), math.exp(0.75)
    pos = (w1 * -1 + w2 * -2) / (w1 + w2)
    neg = 2 * math.log(math.exp(-3 / 2) + math.exp(-1 / 2))
    assert loss.item() == pytest.approx(-(pos - neg) / 2, rel=1e-6)  # / num_groups = 2 (one group filtered)
    assert m == {"groups_used": 1.0, "kl_old": 0.0}  # on-policy: old = current, no trust-region term
    loss.backward()
    g = x.logp_BT.grad
    # positives are pushed up (negative loss gradient), negatives down
    assert g[0, 0] < 0 and g[1, 0] < 0 and g[2, 0] > 0 and g[3, 0] > 0


def test_groups_without_both_outcomes_add_nothing():
    mixed = _x([[-1.0], [-2.0]], [True, False], [1, 1], [0, 0])
    both = _x([[-1.0], [-2.0], [-0.5], [-0.7]], [True, False, True, True], [1, 1, 1, 1], [0, 0, 1, 1])
    a, _ = drpo(mixed, num_groups=2, num_tokens=2, max_len=4)
    b, m = drpo(both, num_groups=2, num_tokens=4, max_len=4)
    assert a.item() == pytest.approx(b.item()) and m["groups_used"] == 1.0


def test_micro_batches_of_whole_groups_sum_to_the_whole():
    rows = [[-1.0, -0.5], [-2.0], [-0.3], [-1.5, -0.1], [-0.2], [-0.9, -0.4]]
    correct, lens, gids = [True, False, False, True, True, False], [2, 1, 1, 2, 1, 2], [0, 0, 0, 1, 1, 1]
    whole, _ = drpo(_x(rows, correct, lens, gids), num_groups=2, num_tokens=9, max_len=8)
    parts = [
        drpo(_x(rows[s], correct[s], lens[s], gids[s]), num_groups=2, num_tokens=9, max_len=8)[0]
        for s in (slice(0, 3), slice(3, 6))
    ]
    assert whole.item() == pytest.approx(sum(p.item() for p in parts), rel=1e-6)


def test_trust_region_is_a_hinge_on_the_kl_to_the_old_policy():
    x = _x([[-1.0], [-2.0]], [True, False], [1, 1], [0, 0])
    drift = GroupLossInput(x.logp_BT, x.old_logp_BT + 0.01, x.mask_BT, x.correct_B, x.response_len_B, x.group_id_B)
    base, _ = drpo(x, num_groups=1, num_tokens=2, max_len=4, delta=1e-4, beta=1e3)
    moved, m = drpo(drift, num_groups=1, num_tokens=2, max_len=4, delta=1e-4, beta=1e3)
    # KL = mean(old - new) = 0.01 > δ: penalty β(KL - δ)·KL = 1e3 * 0.0099 * 0.01
    assert m["kl_old"] == pytest.approx(0.01, rel=1e-5)
    assert moved.item() - base.item() == pytest.approx(1e3 * 0.0099 * 0.01, rel=1e-4)
    inside, _ = drpo(drift, num_groups=1, num_tokens=2, max_len=4, delta=0.02, beta=1e3)
    assert inside.item() == pytest.approx(base.item())  # within the trust region: no penalty


@pytest.mark.parametrize("bad", [{"lam": 0.0}, {"lam": -1.0}, {"tau": 0.0}, {"delta": -1.0}, {"beta": -1.0}])
def test_bad_parameters(bad):
    with pytest.raises(ValueError, match="drpo"):
        drpo(_x([[-1.0]], [True], [1], [0]), num_groups=1, num_tokens=1, max_len=4, **bad)

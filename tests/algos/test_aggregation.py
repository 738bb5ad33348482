import pytest
import torch
from torch.testing import assert_close

from lenrl.algos import AGGREGATIONS, KL_ESTIMATORS

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
MASK = torch.tensor([[True, True, True], [True, False, False]])
COUNTS = {"num_tokens": 4, "num_seqs": 2, "max_len": 5}


def test_hand_computed():
    assert_close(AGGREGATIONS.get("token_mean")(LOSS, MASK, **COUNTS), torch.tensor(2.5))  # 10 / 4
    assert_close(AGGREGATIONS.get("seq_mean_token_mean")(LOSS, MASK, **COUNTS), torch.tensor(3.0))  # (2 + 4) / 2
    agg = AGGREGATIONS.get("seq_mean_token_sum_norm")
    assert_close(agg(LOSS, MASK, **COUNTS, norm_len=4), torch.tensor(1.25))  # (6 + 4) / (4 * 2)
    assert_close(agg(LOSS, MASK, **COUNTS), torch.tensor(1.0))  # C defaults to the budget: 10 / (5 * 2)
    assert_close(AGGREGATIONS.get("seq_mean_token_sum")(LOSS, MASK, **COUNTS), torch.tensor(5.0))  # 10 / 2


def test_micro_batched_sum_equals_whole():
    names = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")
    for name, params in [(n, {}) for n in names] + [("seq_mean_token_sum_norm", {"norm_len": 3})]:
        fn = AGGREGATIONS.get(name)
        whole = fn(LOSS, MASK, **COUNTS, **params)
        parts = sum(fn(LOSS[i : i + 1], MASK[i : i + 1], **COUNTS, **params) for i in range(2))
        assert_close(parts, whole)


def _per_token_weight(name, params):
    """d(aggregate)/d(token loss) for a 1-token and a 4-token response with the same advantage."""
    loss = torch.ones(2, 4, requires_grad=True)
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    AGGREGATIONS.get(name)(loss, mask, num_tokens=5, num_seqs=2, max_len=4, **params).backward()
    return loss.grad[0, 0].item(), loss.grad[1, 0].item()


def test_length_bias_probes():
    short, long = _per_token_weight("seq_mean_token_mean", {})
    assert short > long  # GRPO: a short response's tokens weigh more (1/2 vs 1/8)
    assert (short, long) == (0.5, 0.125)
    short, long = _per_token_weight("token_mean", {})
    assert short == long == pytest.approx(0.2)  # DAPO: every token weighs 1/5
    short, long = _per_token_weight("seq_mean_token_sum_norm", {})
    assert short == long == 0.125  # Dr. GRPO: constant 1/(4*2), no length dependence
    short, long = _per_token_weight("seq_mean_token_sum", {})
    assert short == long == 0.5  # RLOO: 1/N per token, so a long response's total weight grows with length


def test_seq_sum_norm_with_unit_constant_is_seq_sum():
    a = AGGREGATIONS.get("seq_mean_token_sum_norm")(LOSS, MASK, **COUNTS, norm_len=1)
    assert_close(a, AGGREGATIONS.get("seq_mean_token_sum")(LOSS, MASK, **COUNTS))


def test_kl_estimators_hand_computed_and_relations():
    logp = torch.tensor([[0.0, -1.0]])
    ref = torch.tensor([[0.5, -1.0]])
    assert_close(KL_ESTIMATORS.get("k1")(logp, ref), torch.tensor([[-0.5, 0.0]]))
    assert_close(KL_ESTIMATORS.get("k2")(logp, ref), torch.tensor([[0.125, 0.0]]))
    d = torch.tensor(0.5)
    assert_close(KL_ESTIMATORS.get("k3")(logp, ref), torch.tensor([[float(d.exp() - d - 1), 0.0]]))
    # k3 ~ k2 to second order for small differences, and k3 >= 0 always
    small, zero = torch.tensor([[1e-2]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    assert_close(KL_ESTIMATORS.get("k3")(zero, small), KL_ESTIMATORS.get("k2")(zero, small), rtol=1e-2, atol=0.0)
    assert (KL_ESTIMATORS.get("k3")(torch.randn(50, 5), torch.randn(50, 5)) >= 0).all()

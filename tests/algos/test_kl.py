"""KL estimators at extreme log-ratios: k3's value clamp (verl `low_var_kl`) and its gradient."""

import math

import pytest
import torch

from lenrl.algos import KL_ESTIMATORS

k3 = KL_ESTIMATORS.get("k3")


@pytest.mark.parametrize("d", [5.0, 15.0, 40.0])
def test_k3_value_is_clamped_at_10_with_zero_gradient(d: float) -> None:
    # d = ref_logp - logp. Unclamped, d = 5 gives exp(5) - 6 = 142.41 (gradient d/dlogp = 1 - e^5 = -147.4).
    logp = torch.tensor([[0.0]], requires_grad=True)
    out = k3(logp, torch.tensor([[d]]))
    assert out.item() == 10.0
    out.sum().backward()
    assert logp.grad is not None and logp.grad.item() == 0.0


def test_k3_below_the_clamp_is_exact_with_its_gradient() -> None:
    # d = 2: exp(2) - 2 - 1 = 4.3891 < 10; d/dlogp (exp(d) - d - 1) = -(exp(d) - 1) = -6.3891
    logp = torch.tensor([[0.0]], requires_grad=True)
    out = k3(logp, torch.tensor([[2.0]]))
    assert out.item() == pytest.approx(math.exp(2) - 3, rel=1e-6)
    out.sum().backward()
    assert logp.grad.item() == pytest.approx(-(math.exp(2) - 1), rel=1e-6)


def test_k3_large_negative_log_ratio_grows_linearly_until_the_clamp() -> None:
    # d = -5: exp(-5) + 5 - 1 = 4.0067 (no clamp); d = -15: 14.0000003 -> 10
    out = k3(torch.tensor([[5.0, 15.0]]), torch.tensor([[0.0, 0.0]]))
    assert out[0, 0].item() == pytest.approx(math.exp(-5) + 4, rel=1e-6)
    assert out[0, 1].item() == 10.0
    assert torch.isfinite(k3(torch.tensor([[0.0]]), torch.tensor([[1e4]]))).all()


def test_k3_matches_k2_near_zero_and_never_exceeds_the_clamp() -> None:
    small = torch.full((1, 3), 1e-3, dtype=torch.float64)  # fp64: exp(d) - d - 1 cancels badly in fp32
    zero = torch.zeros(1, 3, dtype=torch.float64)
    torch.testing.assert_close(k3(zero, small), KL_ESTIMATORS.get("k2")(zero, small), rtol=1e-2, atol=0.0)
    wide = k3(torch.zeros(100, 4), torch.linspace(-30, 30, 400).reshape(100, 4))
    assert (wide >= 0).all() and (wide <= 10).all()

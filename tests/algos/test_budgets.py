import pytest
import torch

from lenrl.algos import BUDGET_SCHEDULES, QUESTION_BUDGETS


def _schedule(name, steps, max_tokens, **params):
    fn = BUDGET_SCHEDULES.get(name)
    return [fn(step=t, total_steps=steps, max_tokens=max_tokens, **params) for t in range(steps)]


def test_exponential_reproduces_the_paper_schedule():
    b = _schedule("exponential", 600, 256, end=87, decays=3)
    assert (b[0], b[149], b[150], b[300], b[450], b[599]) == (256, 256, 179, 125, 87, 87)  # paper §3.2


def test_linear_hand_computed_and_shares_endpoints_with_exponential():
    b = _schedule("linear", 8, 100, end=40, decays=3)
    assert b == [100, 100, 80, 80, 60, 60, 40, 40]
    e = _schedule("exponential", 8, 100, end=40, decays=3)
    assert (e[0], e[-1]) == (b[0], b[-1]) and all(x <= y for x, y in zip(e, b, strict=False))  # convex below linear


def test_one_decay_exponential_equals_one_decay_linear():
    assert _schedule("exponential", 10, 256, end=87, decays=1) == _schedule("linear", 10, 256, end=87, decays=1)


def test_step_decay_and_constant():
    assert _schedule("step_decay", 6, 100, gamma=0.5, every=2) == [100, 100, 50, 50, 25, 25]
    assert _schedule("constant", 3, 64) == [64, 64, 64]
    assert _schedule("step_decay", 3, 64, gamma=1.0, every=1) == _schedule("constant", 3, 64)


def test_every_schedule_rounds_to_the_nearest_token():
    # 100 * 0.7^k = 100, 70, 49, 34.3, 24.01, 16.807 -> nearest: 100, 70, 49, 34, 24, 17 (floor gave 16 at k=5)
    assert _schedule("step_decay", 6, 100, gamma=0.7, every=1) == [100, 70, 49, 34, 24, 17]
    # 10 * 0.55 = 5.5000000000000004 -> 6 (floor gave 5), 10 * 0.3025 = 3.025 -> 3
    assert _schedule("step_decay", 3, 10, gamma=0.55, every=1) == [10, 6, 3]
    # linear 100 -> 45 in 2 decays: 100, 72.5 -> 72 (half to even), 45; exponential 100 -> 10: 100, 31.62 -> 32, 10
    assert _schedule("linear", 3, 100, end=45, decays=2) == [100, 72, 45]
    assert _schedule("exponential", 3, 100, end=10, decays=2) == [100, 32, 10]


@pytest.mark.parametrize(
    "name, params",
    [
        ("exponential", {"end": 0}),
        ("linear", {"end": -5}),
        ("step_decay", {"gamma": 0.0, "every": 1}),
        ("exponential", {"end": 5, "decays": 0}),
    ],
)
def test_bad_parameters_raise(name, params):
    with pytest.raises(ValueError):
        BUDGET_SCHEDULES.get(name)(step=0, total_steps=4, max_tokens=64, **params)


def _palu(budget, correct, lens, **params):
    fn = QUESTION_BUDGETS.get("palu")
    return fn(budget=budget, correct_B=torch.tensor(correct), len_B=torch.tensor(lens), max_tokens=100, **params)


def test_palu_shrinks_by_the_quantile_gap_when_the_pass_rate_meets_c():
    # 4/5 correct >= 0.8; correct lengths 10, 20, 30, 60: Q_1.0 = 60, Q_0.5 = 25 (linear) -> α = 35
    assert _palu(80, [True, True, True, True, False], [10, 20, 30, 60, 99]) == 45
    # τ = 0.25: Q_0.75 = 37.5 -> α = 22.5 -> round 22 (banker's rounding of .5 to even)
    assert _palu(80, [True, True, True, True, False], [10, 20, 30, 60, 99], tau=0.25) == 58
    assert _palu(30, [True] * 4, [1, 1, 1, 200], min_budget=8) == 8  # never below min_budget


def test_palu_resets_to_the_maximum_below_c():
    assert _palu(20, [True, False, False, True], [5, 9, 9, 6]) == 100  # pass rate 0.5 < 0.8
    assert _palu(20, [], []) == 100


def test_palu_with_tau_zero_never_shrinks_like_none():
    none = QUESTION_BUDGETS.get("none")
    correct, lens = torch.tensor([True, True, True]), torch.tensor([5, 50, 70])
    assert _palu(100, correct.tolist(), lens.tolist(), tau=0.0) == 100
    assert none(budget=100, correct_B=correct, len_B=lens, max_tokens=100) == 100


@pytest.mark.parametrize("params", [{"threshold": 0.0}, {"threshold": 1.5}, {"tau": -0.1}, {"min_budget": 0}])
def test_palu_bad_parameters(params):
    with pytest.raises(ValueError, match="palu"):
        _palu(50, [True], [5], **params)

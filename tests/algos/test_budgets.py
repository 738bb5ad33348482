import pytest

from lenrl.algos import BUDGET_SCHEDULES


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
    assert (e[0], e[-1]) == (b[0], b[-1]) and all(x <= y for x, y in zip(e, b))  # convex below linear


def test_one_decay_exponential_equals_one_decay_linear():
    assert _schedule("exponential", 10, 256, end=87, decays=1) == _schedule("linear", 10, 256, end=87, decays=1)


def test_step_decay_and_constant():
    assert _schedule("step_decay", 6, 100, gamma=0.5, every=2) == [100, 100, 50, 50, 25, 25]
    assert _schedule("constant", 3, 64) == [64, 64, 64]
    assert _schedule("step_decay", 3, 64, gamma=1.0, every=1) == _schedule("constant", 3, 64)


@pytest.mark.parametrize("name, params", [("exponential", {"end": 0}), ("linear", {"end": -5}),
                                          ("step_decay", {"gamma": 0.0, "every": 1}), ("exponential", {"end": 5, "decays": 0})])  # fmt: skip
def test_bad_parameters_raise(name, params):
    with pytest.raises(ValueError):
        BUDGET_SCHEDULES.get(name)(step=0, total_steps=4, max_tokens=64, **params)

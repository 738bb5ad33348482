import pytest
import torch

from lenrl.algos import GROUP_FILTERS, FilterInput


def test_nonzero_std_keeps_groups_with_spread_on_pre_shaping_correctness():
    correct = torch.tensor([True, False, True, True, False, False])
    score = torch.tensor([0.0, 0.0, 1.0, 0.5, 0.0, 0.0])  # group 0: correct answer truncated to 0
    x = FilterInput(score, correct, torch.tensor([0, 0, 1, 1, 2, 2]))
    f = GROUP_FILTERS.get("nonzero_std")
    assert f(x).tolist() == [True, True, False, False, False, False]
    assert f(x, by="score").tolist() == [False, False, True, True, False, False]


def test_none_keeps_everything_and_is_nonzero_std_on_all_spread_batch():
    x = FilterInput(torch.tensor([1.0, 0.0]), torch.tensor([True, False]), torch.tensor([4, 4]))
    assert GROUP_FILTERS.get("none")(x).tolist() == GROUP_FILTERS.get("nonzero_std")(x).tolist() == [True, True]


def _grpo_lambda_batch():
    # groups 10, 11, 12, 13 with correctness ratios 0.5, 1.0, 0.0, 0.5
    correct = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1], dtype=torch.bool)
    return FilterInput(torch.zeros(8), correct, torch.tensor([10, 10, 11, 11, 12, 12, 13, 13]))


def test_top_fraction_by_hand_ties_to_the_earlier_group():
    f, x = GROUP_FILTERS.get("top_fraction"), _grpo_lambda_batch()
    assert f(x, fraction=0.25).tolist() == [False, False, True, True, False, False, False, False]  # k = 1
    # k = ceil(0.5 * 4) = 2: group 11 (1.0), then 10 and 13 tie at 0.5 -> the lower id, 10
    assert f(x, fraction=0.5).tolist() == [True, True, True, True, False, False, False, False]
    assert not f(x, fraction=0.0).any()


def test_top_fraction_relations_to_none_and_min_ratio():
    x = _grpo_lambda_batch()
    assert GROUP_FILTERS.get("top_fraction")(x, fraction=1.0).tolist() == GROUP_FILTERS.get("none")(x).tolist()
    # without ties at the cut, the top-k groups are the groups at or above the k-th ratio
    top3 = GROUP_FILTERS.get("top_fraction")(x, fraction=0.75)
    assert top3.tolist() == GROUP_FILTERS.get("min_ratio")(x, threshold=0.5).tolist()
    assert GROUP_FILTERS.get("min_ratio")(x, threshold=1.0).tolist() == [False, False, True, True] + [False] * 4


@pytest.mark.parametrize(
    "name,params",
    [("top_fraction", {"fraction": -0.1}), ("top_fraction", {"fraction": 1.5}), ("min_ratio", {"threshold": 2.0})],
)
def test_selector_bad_parameters(name, params):
    with pytest.raises(ValueError, match=name):
        GROUP_FILTERS.get(name)(_grpo_lambda_batch(), **params)

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

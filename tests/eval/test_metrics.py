import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenrl.eval.length_control import (
    length_control,
    length_error,
    length_target_correlation,
    over_target_rate,
    relative_length_error,
    within_target_rate,
)
from lenrl.eval.metrics import (
    accuracy_vs_budget,
    aes,
    avg_at_k,
    length_stats,
    maj_at_k,
    majority_vote,
    mean_pass_at_k,
    pass_at_k,
    shortest_fraction_accuracy,
    think_answer_lengths,
    tokens_per_correct,
    truncation_rate,
)

# --- pass@k, avg@k ---------------------------------------------------------------------------


def _brute_pass_at_k(n, c, k):
    """Fraction of the k-subsets of n samples (the first c correct) that hold a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(
    "n,c,k",
    [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (5, 2, 4), (6, 0, 3), (6, 6, 2), (8, 3, 5), (10, 1, 10), (10, 4, 2)],
)
def test_pass_at_k_matches_brute_force(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_1_is_the_fraction_correct_and_large_n_is_stable():
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)
    assert pass_at_k(1000, 10, 100) == pytest.approx(1 - math.comb(990, 100) / math.comb(1000, 100), rel=1e-9)
    assert pass_at_k(np.int64(4), np.int64(1), np.int64(2)) == pytest.approx(0.5)


def test_mean_pass_at_k_and_avg_at_k_hand_computed():
    rows = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    # pass@2: 1 - C(2,2)/C(4,2) = 5/6 ; 0 ; 1
    assert mean_pass_at_k(rows, 2) == pytest.approx((5 / 6 + 0 + 1) / 3)
    ragged = [[True, False, True, True], [False, False, True]]
    assert avg_at_k(ragged, 2) == pytest.approx((1 / 2 + 0) / 2)  # first 2 samples only
    assert avg_at_k(ragged, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)


# --- maj@k -----------------------------------------------------------------------------------


def test_majority_vote_ties_go_to_the_first_appearing_answer_and_none_never_wins():
    assert majority_vote(["a", "b", "b", "a"]) == 0  # 2-2 tie: "a" appeared first
    assert majority_vote([None, "b", "a", "a", "b"]) == 1  # "b" appeared first
    assert majority_vote(["x", None, None, None, "y"]) == 0  # three Nones do not win
    assert majority_vote(["x", None, "y", "y"]) == 2
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_maj_at_k_hand_computed():
    answers = [
        ["a", "b", "b", "a", "a"],  # k=3: "b" wins (wrong); k=5: "a" wins (right)
        [None, None, None],  # all None: incorrect even though flagged correct
        ["7", None, None],  # lone answer beats the Nones: correct
        ["1", "2", "2"],  # k=3: "2" wins, correct via its first sample
    ]
    correct = [[1, 0, 0, 1, 1], [1, 1, 1], [1, 0, 0], [0, 1, 1]]
    assert maj_at_k(answers[:1], correct[:1], 3) == 0.0
    assert maj_at_k(answers[:1], correct[:1], 5) == 1.0
    assert maj_at_k(answers[1:], correct[1:], 3) == pytest.approx(2 / 3)
    assert maj_at_k(answers[1:], correct[1:], 1) == pytest.approx(1 / 3)  # only "7" is a non-None vote
    assert maj_at_k([r[:3] for r in answers], [r[:3] for r in correct], 3) == pytest.approx(2 / 4)


# --- length statistics -----------------------------------------------------------------------


def test_length_stats_match_numpy():
    rng = np.random.default_rng(0)
    len_B = rng.integers(1, 4000, size=257)
    correct_B = rng.random(257) < 0.4
    s = length_stats(len_B, correct_B)
    for summary, x in ((s.overall, len_B), (s.correct, len_B[correct_B]), (s.incorrect, len_B[~correct_B])):
        assert summary.n == x.size
        assert summary.mean == pytest.approx(np.mean(x))
        assert summary.median == pytest.approx(np.median(x))
        assert summary.p90 == pytest.approx(np.quantile(x, 0.9))


def test_length_stats_empty_split_is_nan_and_torch_inputs_work():
    import torch  # the only torch use here; imported lazily to keep the module light

    s = length_stats(torch.tensor([3, 5, 10]), torch.tensor([True, True, True]))
    assert (s.overall.mean, s.overall.median, s.correct.n) == (6.0, 5.0, 3)
    assert s.incorrect.n == 0 and math.isnan(s.incorrect.mean) and math.isnan(s.incorrect.p90)


def test_think_answer_lengths_exclude_unclosed_thinking():
    s = think_answer_lengths([10, 20, 30, 40], [4, 0, 10, 40])  # second response never closed </think>
    assert s.total_mean == 25.0
    assert s.think_mean == pytest.approx((4 + 10 + 40) / 3)
    assert s.answer_mean == pytest.approx((6 + 20 + 0) / 3)
    assert s.closed_frac == 0.75
    none = think_answer_lengths([5, 7], [0, 0])
    assert none.total_mean == 6.0 and math.isnan(none.think_mean) and none.closed_frac == 0.0


def test_truncation_rate_and_tokens_per_correct():
    assert truncation_rate([True, False, False, True]) == 0.5
    assert tokens_per_correct([100, 300, 200], [1, 0, 1]) == 300.0
    assert tokens_per_correct([100, 300], [0, 0]) == math.inf


def test_shortest_fraction_accuracy_hand_computed_with_ties():
    len_B = [5, 1, 3, 3, 9, 2, 7, 4, 6, 8]
    correct_B = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1]
    # sorted (stable): idx 1 (len 1, wrong), 5 (2, right), 2 (3, right), 3 (3, wrong), 7 (4, wrong), ...
    acc = shortest_fraction_accuracy(len_B, correct_B, fractions=(0.05, 0.1, 0.2, 0.3, 0.4, 1.0))
    assert acc == {0.05: 0.0, 0.1: 0.0, 0.2: 0.5, 0.3: pytest.approx(2 / 3), 0.4: 0.5, 1.0: 0.6}
    assert set(shortest_fraction_accuracy(len_B, correct_B)) == {0.05, 0.10, 0.20}


def test_shortest_fraction_rounding_is_not_fooled_by_float_error():
    len_B = np.arange(30)  # 0.1 * 30 = 3.0000000000000004 must give 3 responses, not 4
    correct_B = np.array([1, 1, 1] + [0] * 27)
    assert shortest_fraction_accuracy(len_B, correct_B, fractions=(0.1,)) == {0.1: 1.0}


# --- length control --------------------------------------------------------------------------


def test_length_control_hand_computed():
    lens, targets = [10, 30, 50, 70], [20, 20, 60, 60]
    # |len - N| = 10 each; relative 10/20, 10/20, 10/60, 10/60 -> (1/2 + 1/2 + 1/6 + 1/6) / 4 = 1/3
    assert length_error(lens, targets) == 10.0
    assert relative_length_error(lens, targets) == pytest.approx(1 / 3)
    # within 20%: 10 <= 4? no, no; 10 <= 12 yes, yes. Over target: 30 > 20 and 70 > 60
    assert within_target_rate(lens, targets) == 0.5 and over_target_rate(lens, targets) == 0.5
    # deviations from the means (40, 40): len -30 -10 10 30, N -20 -20 20 20
    # r = 1600 / sqrt(2000 * 1600) = 2 / sqrt(5)
    assert length_target_correlation(lens, targets) == pytest.approx(2 / math.sqrt(5))
    lc = length_control(np.array(lens), targets)
    assert (lc.samples, lc.mean_target, lc.mean_abs_error, lc.tolerance) == (4, 40.0, 10.0, 0.2)
    assert (lc.within_tolerance, lc.over_target) == (0.5, 0.5)
    assert lc.correlation == pytest.approx(2 / math.sqrt(5)) and lc.mean_relative_error == pytest.approx(1 / 3)


def test_length_control_relations():
    rng = np.random.default_rng(0)
    targets = rng.integers(16, 97, size=50)
    lens = rng.integers(5, 200, size=50)
    # relative error is the absolute error over N when all targets are one N
    assert relative_length_error(lens, [40] * 50) == pytest.approx(length_error(lens, [40] * 50) / 40)
    # the correlation measures control, not calibration: an affine map of the lengths leaves it unchanged,
    # while the length error moves; it is numpy's Pearson coefficient
    r = length_target_correlation(lens, targets)
    assert r == pytest.approx(np.corrcoef(lens, targets)[0, 1])
    assert length_target_correlation(2 * lens + 7, targets) == pytest.approx(r)
    assert length_target_correlation(targets, targets) == pytest.approx(1.0) and length_error(targets, targets) == 0
    # constant targets (or lengths): undefined
    assert math.isnan(length_target_correlation(lens, [40] * 50)) and math.isnan(
        length_target_correlation([9] * 50, targets)
    )
    # the tolerance band: 0 keeps exact hits only, a wide one everything; the band edge counts as within
    assert within_target_rate(lens, targets, 0.0) == float(np.mean(lens == targets))
    assert within_target_rate(lens, targets, 100.0) == 1.0 and within_target_rate([12, 8], [10, 10], 0.2) == 1.0


# --- AES -------------------------------------------------------------------------------------


def test_aes_hand_computed_both_branches():
    # dL = (1000-600)/1000 = 0.4 ; dA = (0.84-0.8)/0.8 = 0.05 >= 0 -> 1*0.4 + 3*0.05 = 0.55
    assert aes(0.84, 600, 0.80, 1000) == pytest.approx(0.55)
    # dL = 0.5 ; dA = (0.72-0.8)/0.8 = -0.1 < 0 -> 1*0.5 - 5*0.1 = 0.0
    assert aes(0.72, 500, 0.80, 1000) == pytest.approx(0.0, abs=1e-12)
    # dL = -0.2 (longer) ; dA = -0.05 -> -0.2 - 0.25 = -0.45
    assert aes(76.0, 1200, 80.0, 1000) == pytest.approx(-0.45)  # percentages give the same score
    assert aes(0.80, 800, 0.80, 1000) == pytest.approx(0.2)  # dA = 0 takes the beta branch
    assert aes(0.84, 600, 0.80, 1000, alpha=2.0, beta=1.0) == pytest.approx(2 * 0.4 + 0.05)


# --- accuracy vs budget ----------------------------------------------------------------------


def test_accuracy_vs_budget_hand_computed():
    len_B = [100, 200, 300, 400, 400]
    correct_B = [1, 0, 1, 1, 0]  # response 3 was graded correct as-is but never finished
    finished_B = [1, 1, 1, 0, 0]
    acc = accuracy_vs_budget(len_B, correct_B, finished_B, [50, 99, 100, 250, 300, 400])
    np.testing.assert_allclose(acc, [0.0, 0.0, 0.2, 0.2, 0.4, 0.4])  # len == budget with EOS counts


def _toy_sample(seed, max_tokens, eos=0):
    """Autoregressive toy sampler: token t depends only on the per-request RNG stream, not on the cap."""
    rng = np.random.default_rng(seed)
    toks = []
    for _ in range(max_tokens):
        toks.append(int(rng.integers(0, 6)))
        if toks[-1] == eos:
            return toks, True
    return toks, False


def test_accuracy_vs_budget_equals_regenerating_with_each_cap_and_is_monotone():
    grade = lambda toks: sum(toks) % 2 == 0  # noqa: E731  (graded as-is, like DLER)
    seeds, cap, budgets = range(200), 64, [1, 2, 3, 5, 8, 13, 21, 34, 64]
    long = [_toy_sample(s, cap) for s in seeds]
    acc = accuracy_vs_budget([len(t) for t, _ in long], [grade(t) for t, _ in long], [f for _, f in long], budgets)
    for b, a in zip(budgets, acc, strict=True):
        short = [_toy_sample(s, b) for s in seeds]
        assert a == pytest.approx(np.mean([f and grade(t) for t, f in short]))
    assert (np.diff(acc) >= 0).all()
    rng = np.random.default_rng(1)
    len_B = rng.integers(1, 500, size=300)
    finished_B = len_B < 450
    len_B[~finished_B] = 500
    acc = accuracy_vs_budget(len_B, rng.random(300) < 0.5, finished_B, list(range(10, 501, 10)))
    assert (np.diff(acc) >= 0).all()


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: pass_at_k(3, 1, 4), "need k <= n, got k=4, n=3"),
        (lambda: pass_at_k(3, 1, 0), "k must be >= 1, got 0"),
        (lambda: pass_at_k(3, 4, 1), "need 0 <= c <= n, got c=4, n=3"),
        (lambda: pass_at_k(3.0, 1, 1), "n must be an integer, got 3.0"),
        (lambda: avg_at_k([[1, 0], [1]], 2), r"correct_per_question\[1\] has 1 samples, fewer than k=2"),
        (lambda: avg_at_k([], 1), "correct_per_question is empty"),
        (lambda: maj_at_k([["a"]], [[1], [0]], 1), "same number of questions, got 1 and 2"),
        (lambda: maj_at_k([["a", "b"]], [[1]], 1), "question 0: 2 answers but 1 correctness flags"),
        (lambda: maj_at_k([[1, 2]], [[1, 0]], 2), "answers must be normalised strings or None, got int"),
        (lambda: length_stats([1, 2, 3], [1, 0]), "len_B and correct_B must have the same length, got 3 and 2"),
        (lambda: length_stats([], []), "len_B is empty"),
        (lambda: length_stats([1, -2], [1, 0]), "len_B must hold non-negative numbers"),
        (lambda: length_stats([1, 2], [1, 2]), "correct_B must hold booleans or 0/1"),
        (lambda: length_stats([[1, 2]], [1]), r"len_B must be 1-D, got shape \(1, 2\)"),
        (lambda: think_answer_lengths([5], [6]), "think_len_B must not exceed len_B"),
        (lambda: shortest_fraction_accuracy([1], [1], (0.0,)), r"fractions must lie in \(0, 1\], got 0.0"),
        (lambda: aes(0.5, 100, 0.0, 100), "base_acc and base_length must be > 0, got 0.0 and 100"),
        (lambda: aes(float("nan"), 100, 0.5, 100), "acc must be a finite non-negative number, got nan"),
        (lambda: accuracy_vs_budget([1], [1], [1], [100, 100]), r"strictly increasing positive .*got \[100, 100\]"),
        (lambda: accuracy_vs_budget([1], [1], [1], [0, 10]), r"strictly increasing positive integers, got \[0, 10\]"),
        (lambda: accuracy_vs_budget([1], [1], [1], [10.5]), "budgets must be integers"),
        (lambda: accuracy_vs_budget([1], [1], [1], []), "budgets must be a non-empty 1-D sequence"),
        (lambda: accuracy_vs_budget([1, 2], [1], [1, 1], [5]), "len_B and correct_B and finished_B must have the same"),
        (lambda: accuracy_vs_budget([8, 4], [1, 0], [1, 0], [2, 5]), "budget 5 exceeds the length 4 of an unfinished"),
        (lambda: length_error([10, 20], [10]), "len_B and target_B must have the same length, got 2 and 1"),
        (lambda: length_error([10], [0]), "target_B must hold positive target lengths"),
        (lambda: within_target_rate([10], [10], -0.1), "tolerance must be a finite number >= 0, got -0.1"),
    ],
)
def test_bad_inputs_raise_value_error_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_metrics_module_imports_no_heavy_engines():
    code = "import sys, lenrl.eval.metrics; bad = {'vllm', 'ray', 'transformers'} & set(sys.modules); assert not bad"
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=True)

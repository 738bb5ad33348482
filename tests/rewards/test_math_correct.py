"""math_correct: answer extraction (last box after `</think>`, fallbacks) and math-verify equivalence."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from lenrl.reward import REWARDS, RewardInput
from rewards.math_correct import extract_answer, is_equivalent, math_correct

# (completion, gold, params, expected correct)
CASES = [
    # equivalence forms
    ("\\boxed{\\frac{1}{2}}", "0.5", {}, True),
    ("\\boxed{0.5}", "\\frac{1}{2}", {}, True),
    ("\\boxed{\\dfrac12}", "\\frac{1}{2}", {}, True),
    ("\\boxed{\\dfrac{3}{4}}", "\\tfrac{3}{4}", {}, True),
    ("\\boxed{\\sqrt{12}}", "2\\sqrt{3}", {}, True),
    ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", {}, True),
    ("\\boxed{\\left( 1, 2 \\right)}", "(1,2)", {}, True),
    ("\\boxed{\\{2,1\\}}", "\\{1,2\\}", {}, True),
    ("\\boxed{3}", "\\boxed{3}", {}, True),
    ("\\boxed{3}", "$3$", {}, True),
    ("\\boxed{5}", "\\$5", {}, True),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", {}, False),
    # several boxes: the last one wins
    ("first \\boxed{1}, then \\boxed{2}", "2", {}, True),
    ("first \\boxed{2}, then \\boxed{1}", "2", {}, False),
    # thinking: only the text after the last </think> counts
    ("<think>maybe \\boxed{3}</think> so \\boxed{4}", "4", {}, True),
    ("<think>maybe \\boxed{4}</think> so \\boxed{3}", "4", {}, False),
    ("<think>it is \\boxed{4}</think> The answer is four.", "4", {}, False),
    ("<think>a</think>b</think> \\boxed{4}", "4", {}, True),
    # no box
    ("The answer is 4.", "4", {}, False),
    ("The answer is 4.", "4", {"fallback": "last_number"}, True),
    ("I got 3, then 4.", "3", {"fallback": "last_number"}, False),
    ("so the total is 1,234 dollars.", "1234", {"fallback": "last_number"}, True),
    ("the change is -7.5 degrees", "-7.5", {"fallback": "last_number"}, True),
    ("10-3 = 7", "7", {"fallback": "last_number"}, True),
    # box shapes
    ("\\boxed{4", "4", {}, False),
    ("\\boxed{4", "4", {"fallback": "last_number"}, False),
    ("\\boxed 5.", "5", {}, True),
    ("$\\boxed5$", "5", {}, True),
    ("\\fbox{7}", "7", {}, True),
    ("\\boxed{}", "0", {}, False),
    # require_think_close
    ("\\boxed{4}", "4", {"require_think_close": True}, False),
    ("<think>x</think>\\boxed{4}", "4", {"require_think_close": True}, True),
]


@pytest.mark.parametrize(("completion", "gold", "params", "expected"), CASES)
def test_cases(completion, gold, params, expected):
    pred = extract_answer(completion, **params)
    assert (pred is not None and is_equivalent(pred, gold)) is expected


def test_extract_answer_values():
    assert extract_answer("a \\boxed{x^{2}} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert extract_answer("<think>\\boxed{1}</think>none") is None
    assert extract_answer("no think \\boxed{1}", require_think_close=True) is None
    assert extract_answer("= 1,234,567.", fallback="last_number") == "1234567"
    assert extract_answer("no digits", fallback="last_number") is None
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"


def test_unknown_fallback_raises():
    with pytest.raises(ValueError, match="fallback"):
        extract_answer("\\boxed{1}", fallback="first_number")
    with pytest.raises(ValueError, match="fallback"):
        math_correct(make_input(["\\boxed{1}"], ["1"]), fallback="Last_number")


def make_input(completions: list[str], answers: list[str]) -> RewardInput:
    n = len(completions)
    z = torch.zeros(n, dtype=torch.long)
    return RewardInput(
        prompts=["q"] * n,
        completions=completions,
        completion_ids=[[]] * n,
        answers=answers,
        meta=[{}] * n,
        response_len_B=z,
        think_len_B=z,
        truncated_B=z.bool(),
        group_id_B=z,
        budget_B=z,
    )


def test_reward_output_and_registration():
    assert REWARDS.get("math_correct") is math_correct
    x = make_input(["\\boxed{1}", "\\boxed{2}", "1", "\\boxed{1"], ["1", "1", "1", "1"])
    out = math_correct(x)
    assert_close(out.score_B, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert_close(out.correct_B, torch.tensor([True, False, False, False]))
    assert_close(out.parts["boxed"], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    out = math_correct(x, fallback="last_number")
    assert_close(out.score_B, torch.tensor([1.0, 0.0, 1.0, 0.0]))

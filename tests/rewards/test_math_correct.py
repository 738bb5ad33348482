"""The `math` grader (answer extraction: last box after `</think>`, thinking mode, fallbacks; notation;
math-verify equivalence) and the `math_correct` reward, which reads the grader's verdict."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
from torch.testing import assert_close

from lenrl.reward import GRADERS, REWARDS, RewardInput
from rewards.math_correct import canonical, extract_answer, is_equivalent, math_correct, math_grader

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
    # thinking mode: without `</think>` there is no answer (DLER's grader); off, the whole text is graded
    ("\\boxed{4}", "4", {"thinking": True}, False),
    ("\\boxed{4}", "4", {"thinking": False}, True),
    ("<think>x</think>\\boxed{4}", "4", {"thinking": True}, True),
    ("The answer is 4.", "4", {"thinking": True, "fallback": "last_number"}, False),
]


@pytest.mark.parametrize(("completion", "gold", "params", "expected"), CASES)
def test_cases(completion, gold, params, expected):
    pred = extract_answer(completion, **params)
    assert (pred is not None and is_equivalent(pred, gold)) is expected


def test_extract_answer_values():
    assert extract_answer("a \\boxed{x^{2}} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert extract_answer("<think>\\boxed{1}</think>none") is None
    assert extract_answer("no think \\boxed{1}", thinking=True) is None
    assert extract_answer("no think \\boxed{1}", thinking=False) == "1"
    assert extract_answer("= 1,234,567.", fallback="last_number") == "1234567"
    assert extract_answer("no digits", fallback="last_number") is None
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"


def test_unknown_fallback_raises():
    with pytest.raises(ValueError, match="fallback"):
        extract_answer("\\boxed{1}", fallback="first_number")
    with pytest.raises(ValueError, match="fallback"):
        math_grader("\\boxed{1}", "1", thinking=False, fallback="Last_number")


def make_input(completions: list[str], answers: list[str], correct: list[bool] | None = None) -> RewardInput:
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
        correct_B=None if correct is None else torch.tensor(correct),
    )


def test_math_correct_reads_the_graders_verdict_and_never_grades():
    assert REWARDS.get("math_correct") is math_correct
    # correct_B disagrees with the text on purpose: the reward must echo the verdict, not re-grade
    x = make_input(["\\boxed{1}", "\\boxed{2}", "1", "\\boxed{1"], ["1", "1", "1", "1"], [False, True, True, False])
    out = math_correct(x)
    assert_close(out.score_B, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    assert_close(out.parts["boxed"], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    thinking = math_correct(replace(x, thinking=True))  # no `</think>`: no answer span, so no box in it
    assert_close(thinking.parts["boxed"], torch.zeros(4))
    with pytest.raises(ValueError, match="correct_B"):
        math_correct(make_input(["\\boxed{1}"], ["1"]))  # not graded


def test_grader_registration_and_values():
    assert GRADERS.get("math") is math_grader
    assert math_grader("\\boxed{1}", "1", thinking=False) is True
    assert math_grader("The answer is 4.", "4", thinking=False, fallback="last_number") is True
    assert math_grader("The answer is 4.", "4", thinking=False) is False


# Notation (rule 4): (pred, gold, expected). Each True row but the plain ones fails with raw math-verify.
NOTATION = [
    ("30°", "30^\\circ", True),
    ("30\\degree", "30^\\circ", True),
    ("30^\\circ", "30", True),
    ("30^{\\circ}", "30", True),
    ("30", "30^\\circ", True),
    ("30°", "30", True),
    ("31°", "30^\\circ", False),
    ("f \\circ g", "f \\circ g", True),  # composition is not a degree mark
    ("1.45e6", "1450000", True),
    ("1.45e6", "1.45\\times 10^6", True),
    ("1.45E6", "1450000", True),
    ("2e3", "2000", True),
    ("1.5e-3", "0.0015", True),
    ("1.45e6", "1.45", False),
    ("2e", "2e", True),  # Euler's e stays e
    ("2e", "2", False),
    ("e^2", "e^2", True),
    ("e", "e", True),
    # e-notation is a power of ten, whatever the exponent (there was a cut-off at 10^100)
    ("6.02e23", "6.02\\times10^{23}", True),
    ("3.2e-5", "0.000032", True),
    ("1e101", "10^{101}", True),
    ("1e101", "e", False),
    ("5\\,600", "5600", True),
    ("5600", "5\\,600", True),
    ("5{,}600", "5600", True),
    ("5\\!600", "5600", True),
    ("5\\;600", "5600", True),
    ("1\\,000\\,000", "1000000", True),
    ("605", "5\\,600", False),
    # digit groups: only thousands groups are joined; `{,}` before another group is the decimal comma
    ("1{,}000", "1000", True),
    ("1{,}000{,}000", "1000000", True),
    ("5 600", "5600", True),
    ("3{,}14", "3.14", True),
    ("3{,}14", "314", False),
    ("0{,}5", "0.5", True),
    ("0{,}5", "05", False),
    ("2\\,1/2", "21/2", False),
    ("12\\,3", "123", False),
    ("12\\!3", "123", False),
    ("12\\ ", "12", True),
    ("12\\ ", "13", False),
]


@pytest.mark.parametrize(("pred", "gold", "expected"), NOTATION)
def test_notation_table(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected
    assert math_grader(f"so \\boxed{{{pred}}}", gold, thinking=False) is expected


def test_canonical_values():
    assert canonical("30^{\\circ}") == "30"
    assert canonical("1.45e6") == "1.45\\times10^{6}"
    assert canonical("1.5e-3") == "1.5\\times10^{-3}"
    assert canonical("1e101") == "1\\times10^{101}"
    assert canonical(".5E+03") == "0.5\\times10^{3}"
    assert [canonical(s) for s in ("e^2", "2e", "e", "x2e3")] == ["e^2", "2e", "e", "x2e3"]
    assert canonical("3{,}14") == "3.14" and canonical("0{,}5") == "0.5"
    assert canonical("1{,}000{,}000") == "1000000" and canonical("5\\;600") == "5600"
    assert canonical("2\\,1/2") == "2 1/2" and canonical("12\\,3") == "12 3"  # not thousands groups
    assert canonical("1\\,000.5") == "1 000.5" and canonical("1\\,000/3") == "1 000/3"
    assert canonical("5\\,600") == "5600"
    assert canonical("12\\ ") == "12"
    assert canonical("x\\,dx") == "x dx"  # spacing outside numbers stays a space


def test_math_verify_log_lines_are_cut(caplog):
    big = "x" * 40_000
    with caplog.at_level(logging.WARNING, logger="math_verify.parser"):
        logging.getLogger("math_verify.parser").warning("Timeout during parsing: %s", big)
    (rec,) = caplog.records
    assert len(rec.getMessage()) < 250 and "[40024 chars]" in rec.getMessage()

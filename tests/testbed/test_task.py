"""The testbed task generator: minimal traces, verbose traces, splits, seeds, bad input."""

from __future__ import annotations

import re
import statistics

import pytest

from lenrl.config import DataConfig
from lenrl.errors import LenrlError
from lenrl.testbed.task import (
    BUDGET_PHRASES,
    BUDGET_RANGE,
    BUDGET_SHARE,
    DEFAULT_INSTRUCTION,
    Chain,
    TaskSpec,
    chains,
    instruction_for,
    is_held_out,
    min_len,
    minimal_trace,
    padding_for,
    parse_expression,
    parse_id,
    problems,
    skipped_steps,
    skipped_trace,
    token_count,
    training_trace,
    verbose_trace,
)

SPEC = TaskSpec()


def boxed(text: str) -> str:
    assert text.count("</think>") == 1
    tail = text.split("</think>", 1)[1]
    assert tail.startswith("\\boxed{") and tail.endswith("}")
    return tail[len("\\boxed{") : -1]


def is_valid(chain: Chain, text: str) -> bool:
    """A trace is valid when its thinking holds every necessary step line, in order, as whole lines,
    and it ends in the correct boxed answer."""
    if "</think>" not in text or not text.endswith("}"):
        return False
    think, tail = text.split("</think>", 1)
    if tail != f"\\boxed{{{chain.answer}}}" or not think.endswith("\n"):
        return False
    lines, i = think.split("\n"), 0
    for line in lines:
        if i < chain.steps and line == chain.step_lines()[i]:
            i += 1
    return i == chain.steps


def test_minimal_trace_hand_computed():
    c = parse_expression("3+4-2+1")
    assert c == Chain(3, (4, -2, 1)) and c.values == [7, 5, 6] and c.answer == 6
    assert minimal_trace(c) == "3+4=7\n7-2=5\n5+1=6\n</think>\\boxed{6}"
    # 3 lines of 6 characters + </think> + \boxed{ + "6" + "}" = 22 tokens, + EOS
    assert token_count(minimal_trace(c)) == 22 and min_len(c) == 23


def test_min_len_is_minimal():
    """No valid trace is shorter than L*: deleting any one character of the minimal trace (or any
    shortening of a step line) breaks it, and every verbose trace is valid and at least L* long."""
    for i, c in enumerate(chains(SPEC, 60, split="train", seed=3)):
        m = minimal_trace(c)
        assert is_valid(c, m)
        for k in range(len(m)):
            assert not is_valid(c, m[:k] + m[k + 1 :]), (m, k)
        v = verbose_trace(c, padding_for(c.steps, 3, i))
        assert is_valid(c, v) and token_count(v) + 1 >= min_len(c)


def test_every_trace_boxes_the_right_answer():
    for i, c in enumerate(chains(SPEC, 300, split="train", seed=1)):
        assert all(0 <= v <= SPEC.max_value for v in [c.start, *c.values])
        assert all(1 <= abs(k) <= SPEC.max_operand for k in c.ops)
        assert boxed(minimal_trace(c)) == str(c.answer) == str(eval(c.expression))
        assert boxed(verbose_trace(c, padding_for(c.steps, 1, i))) == str(c.answer)


def test_redundancy_independent_of_answer_and_correctness():
    """The padding is a function of (seed, index, steps) alone: the same padding is drawn for chains with
    other values, and a wrong chain (answer off by one) gets exactly the same redundant lines."""
    c, other = parse_expression("3+4-2"), parse_expression("9-5+5")
    for i in range(50):
        pad = padding_for(3 - 1, 7, i)
        assert pad == padding_for(2, 7, i)
        n_lines = verbose_trace(c, pad).count("\n")
        assert verbose_trace(other, pad).count("\n") == n_lines
        wrong = Chain(c.start, (c.ops[0], c.ops[1] + 1))
        assert verbose_trace(wrong, pad).count("\n") == n_lines
    # across many problems the excess length does not track the answer
    cs = chains(SPEC, 3000, split="train", seed=5)
    excess = {True: [], False: []}
    for i, ch in enumerate(cs):
        extra = verbose_trace(ch, padding_for(ch.steps, 5, i)).count("\n") - ch.steps
        excess[ch.answer >= 10].append(extra / ch.steps)
    assert abs(statistics.mean(excess[True]) - statistics.mean(excess[False])) < 0.15


def test_verbose_lengths_spread_wide():
    cs = chains(SPEC, 2000, split="train", seed=0)
    ratios = sorted(
        (token_count(verbose_trace(c, padding_for(c.steps, 0, i))) + 1) / min_len(c) for i, c in enumerate(cs)
    )
    assert ratios[len(ratios) // 10] < 2.0 and ratios[9 * len(ratios) // 10] > 4.5
    assert 2.8 < statistics.mean(ratios) < 4.5


def test_seeds_reproduce_and_splits_are_disjoint():
    a = problems(SPEC, 200, split="train", seed=11)
    assert a == problems(SPEC, 200, split="train", seed=11)
    assert a[:50] == problems(SPEC, 50, split="train", seed=11)
    assert a != problems(SPEC, 200, split="train", seed=12)
    test = problems(SPEC, 500, split="test", seed=11)
    train_exprs = {p.id.rsplit(":", 1)[1] for p in problems(SPEC, 5000, split="train", seed=0)}
    assert not train_exprs & {p.id.rsplit(":", 1)[1] for p in test}
    assert all(is_held_out(parse_id(p.id)) for p in test)
    p = test[0]
    c = parse_id(p.id)
    assert p.meta == {"task": "testbed", "difficulty": c.steps, "min_len": min_len(c)}
    assert p.question == f"{c.expression}=?" and p.answer == str(c.answer)
    assert {q.meta["difficulty"] for q in test} == set(range(1, 7))
    assert parse_id("arith-d0-s0-000001") is None


def test_fixed_difficulty_and_bad_input():
    assert {c.steps for c in chains(SPEC, 40, split="train", seed=0, steps=4)} == {4}
    for steps in (0, 7):
        with pytest.raises(LenrlError, match=f"difficulty {steps} outside the range 1..6"):
            chains(SPEC, 5, split="train", seed=0, steps=steps)
    with pytest.raises(LenrlError, match="split"):
        chains(SPEC, 5, split="validation", seed=0)
    with pytest.raises(LenrlError, match="min_steps"):
        TaskSpec(min_steps=3, max_steps=2)


def test_sft_instructions_carry_budgets_half_the_time():
    """`instruction_for`: reproducible per (seed, index); about BUDGET_SHARE of prompts name a budget N in
    BUDGET_RANGE, every phrase appears, and the rest are the default instruction."""
    drawn = [instruction_for(3, i) for i in range(2000)]
    assert drawn == [instruction_for(3, i) for i in range(2000)]
    assert drawn != [instruction_for(4, i) for i in range(2000)]
    budgets = [s for s in drawn if s != DEFAULT_INSTRUCTION]
    assert abs(len(budgets) / len(drawn) - BUDGET_SHARE) < 0.05
    ns = [int(re.search(r"\d+", s).group()) for s in budgets]  # type: ignore[union-attr]
    assert BUDGET_RANGE[0] <= min(ns) and max(ns) <= BUDGET_RANGE[1]
    assert {re.sub(r"\d+", "{n}", s) for s in budgets} == {f"{DEFAULT_INSTRUCTION} {p}" for p in BUDGET_PHRASES}


def test_default_instruction_is_the_config_default():
    """The tokenizer holds the default instruction as one token; it must be the one lenrl renders."""
    assert DataConfig().instruction == DEFAULT_INSTRUCTION


def test_skipped_trace_hand_written():
    c = parse_expression("3+4-2+1")
    assert skipped_trace(c, 1) == "3+4=7\n</think>\\boxed{7}"
    assert skipped_trace(c, 2) == "3+4=7\n7-2=5\n</think>\\boxed{5}"


def test_underthinking_traces_are_short_mostly_wrong_and_only_when_asked():
    """`skip_share` of the 2+-step traces stop early; off (the default) every trace is the verbose one, so
    the default recipe's data (and model) is unchanged."""
    cs = chains(SPEC, 4000, split="train", seed=3)
    assert all(training_trace(c, SPEC, 3, i) == verbose_trace(c, padding_for(c.steps, 3, i)) for i, c in enumerate(cs))
    under = TaskSpec(skip_share=0.3)
    skipped = [(i, c) for i, c in enumerate(cs) if skipped_steps(c.steps, 3, i, 0.3) is not None]
    multi = sum(c.steps >= 2 for c in cs)
    assert all(c.steps >= 2 for _, c in skipped)
    assert abs(len(skipped) / multi - 0.3) < 0.03  # 4000 draws: the binomial sd is ~0.008
    wrong = 0
    for i, c in skipped:
        t = training_trace(c, under, 3, i)
        assert t.count("\n") < c.steps and token_count(t) < min_len(c)
        wrong += boxed(t) != str(c.answer)
    assert wrong / len(skipped) > 0.8  # right only when the skipped operations cancel out

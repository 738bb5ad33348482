"""The built-in arithmetic task: deterministic, seed- and difficulty-sensitive, answers re-computable."""

from __future__ import annotations

import re

import pytest

from lenrl.data.arith import OBJECTS, arith_problems
from lenrl.errors import LenrlError


def recompute(meta: dict) -> int:
    """Independent of lenrl.data.arith.evaluate, so a bug there cannot hide here."""
    value = meta["start"]
    for op in meta["ops"]:
        if op[0] == "add":
            value += op[1]
        elif op[0] == "sub":
            value -= op[1]
        else:
            assert op[0] == "add_groups"
            value += op[1] * op[2]
        assert value >= 0  # never negative, not even midway
    return value


def test_deterministic_and_prefix_stable():
    a = arith_problems(50, seed=3, difficulty=2)
    assert a == arith_problems(50, seed=3, difficulty=2)
    assert arith_problems(10, seed=3, difficulty=2) == a[:10]


def test_seed_changes_problems():
    a = arith_problems(200, seed=0, difficulty=2)
    b = arith_problems(200, seed=1, difficulty=2)
    # Another seed draws another stream: few exact repeats, and the answers' distributions still agree
    # (same generator), so the seed changes the draw, not the task.
    shared = {p.question for p in a} & {p.question for p in b}
    assert len(shared) <= 10, len(shared)
    assert sum(p.question == q.question for p, q in zip(a, b, strict=True)) <= 2
    mean = [sum(int(p.answer) for p in x) / len(x) for x in (a, b)]
    assert abs(mean[0] - mean[1]) < 0.25 * max(mean), mean
    assert all(int(p.answer) == recompute(p.meta) for p in a + b)


def test_difficulty_changes_problems():
    easy, hard = arith_problems(200, seed=0, difficulty=1), arith_problems(200, seed=0, difficulty=3)
    assert {len(p.meta["ops"]) for p in easy} == {1}
    assert {len(p.meta["ops"]) for p in hard} == {3}
    assert max(int(p.answer) for p in hard) > max(int(p.answer) for p in easy)
    assert any(op[0] == "add_groups" for p in hard for op in p.meta["ops"])
    assert not any(op[0] == "add_groups" for p in easy for op in p.meta["ops"])


@pytest.mark.parametrize("difficulty", [0, 1, 2, 3, 5])
def test_answers_nonnegative_and_match_meta(difficulty):
    for p in arith_problems(300, seed=7, difficulty=difficulty):
        assert p.answer.isdigit(), p  # non-negative integer, no sign, no decimals
        assert int(p.answer) == recompute(p.meta)
        assert p.meta["difficulty"] == difficulty
        assert p.question.endswith("?")
        assert str(p.meta["start"]) in p.question


def test_difficulty_one_is_one_small_step():
    for p in arith_problems(200, seed=0, difficulty=1):
        (op,) = p.meta["ops"]
        assert op[0] in ("add", "sub") and 1 <= op[1] <= 9 and 2 <= p.meta["start"] <= 9


def test_difficulty_zero_has_a_correct_boxed_demo():
    for p in arith_problems(100, seed=0, difficulty=0):
        demo, _, task = p.question.partition("\n\nNow solve: ")
        (a, b, total) = re.search(r"has (\d+) \w+ and buys (\d+) more\..* = (\d+) \w+\.", demo).groups()
        assert int(a) + int(b) == int(total) and f"\\boxed{{{total}}}" in demo
        (op,) = p.meta["ops"]
        assert op[0] == "add" and task.startswith(f"{task.split()[0]} has {p.meta['start']} ")
        assert "boxed" not in task  # only the demonstration shows the format
        assert 3 <= int(p.answer) <= 10


def test_ids_and_variety():
    ps = arith_problems(100, seed=4, difficulty=2)
    assert ps[17].id == "arith-d2-s4-000017"
    assert len({p.id for p in ps}) == 100
    assert len({p.question.split()[0] for p in ps}) >= 5  # several names
    assert len({o for p in ps for o in OBJECTS if f" {o}" in p.question}) >= 5  # several objects


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_bad_difficulty(bad):
    with pytest.raises(LenrlError, match="difficulty"):
        arith_problems(3, seed=0, difficulty=bad)

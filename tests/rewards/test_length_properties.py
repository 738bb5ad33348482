"""Property tests (hypothesis) for every length shaping reward:

1. among the correct answers of one group, a shorter one never scores lower than a longer one (where a
   reward rewards a target length instead — l1_exact, tlts triangular, surrogate — each side of the
   target is tested);
2. a wrong answer never outscores a correct one of the same length (the additive `truncation` term is
   the documented exception: it is only right composed with math_correct, which is tested instead);
3. lengths are token counts, never characters: the same text with another token count scores
   differently, the same token count with another text length scores the same;
4. group-relative rewards score each group on its own.

Correct completions are `\\boxed{3}` against gold `3` (an exact match) and wrong ones have no box, so no
property calls math-verify; surrogate's SymPy check is stubbed for the same reason (the table tests in
test_length_rewards.py run the real one).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rewards  # noqa: F401  (registers the built-ins)
import rewards.length_group
from lenrl.reward import REWARDS
from tests.rewards._inputs import RIGHT, make_input
from tests.rewards._inputs import sample as s

BUDGET = 200
SETTINGS = settings(max_examples=40, deadline=None)
EPS = 1e-5

# Rewards whose score never increases with length among correct answers (name, params, length_on).
MONOTONE = [
    ("truncation", {"include_correct": True}),
    ("overlong", {"max_len": BUDGET, "buffer": 50}),
    ("overlong", {"buffer": 120, "length_on": "think"}),
    ("l1_exact", {"target_key": "N", "alpha": 0.01}),  # N = 1 <= every length: past the target
    ("l1_max", {"alpha": 0.01}),
    ("l1_max", {"alpha": 0.01, "form": "code", "length_on": "think"}),
    ("cosine", {}),
    ("cosine", {"max_len": 150}),
    ("tlts_triangular", {"shape": "band"}),
    ("kimi", {}),
    ("kimi", {"include_correct": True, "length_on": "think"}),
    ("shorter_better", {"alpha": 0.01}),
    ("shorter_better", {"length_on": "think"}),
    ("arora_zanette", {}),
    ("arora_zanette", {"alpha": 1.0, "check_eos": False}),
    ("surrogate", {"p": 0.001}),  # peak at 0.2 tokens: decreasing over every length >= 1
]
# Rewards that peak at a target length instead (name, params, peak length for BUDGET and meta N = 1).
PEAKED = [
    ("l1_exact", {"alpha": 0.01}, BUDGET),
    ("l1_exact", {"alpha": 0.01, "include_correct": False}, BUDGET),
    ("tlts_triangular", {}, BUDGET),
    ("tlts_triangular", {"budget_key": "N2"}, BUDGET // 2),
    ("surrogate", {"p": 0.5}, BUDGET // 2),
    ("surrogate", {"p": 0.8, "shape": "polyline"}, int(0.8 * BUDGET)),
]
OTHERS = [
    ("repetition", {"ngram_size": 2}),
    ("repetition", {"ngram_size": 2, "only_wrong": False, "mode": "fraction"}),
    ("l1_max", {"alpha": 0.01, "form": "code"}),
]
GROUPED = ["kimi", "shorter_better", "arora_zanette"]


@pytest.fixture(autouse=True, scope="module")
def _no_math_verify():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rewards.length_group, "sympy_valid", lambda pred: True)
        yield


def _ids(n: int, seed: int) -> list[int]:
    return [(seed * 31 + 7 * i) % 5 for i in range(n)]  # some repeated 2-grams, deterministic per seed


@st.composite
def batches(draw, max_groups: int = 3):
    """Groups of 1-6 samples (lengths 1..BUDGET, truncated iff at the cap) plus, per group, a twin of
    its first sample with the other correctness and the same length, thinking length and token ids."""
    out = []
    for g in range(draw(st.integers(1, max_groups))):
        group = []
        for _ in range(draw(st.integers(1, 6))):
            n = draw(st.integers(1, BUDGET) | st.just(BUDGET))  # often at the cap (truncated)
            think = draw(st.sampled_from([0, draw(st.integers(1, n))]))
            seed = draw(st.integers(0, 3))
            meta = {"N": 1, "N2": BUDGET // 2}
            group.append(s(draw(st.booleans()), n, g, think=think, ids=_ids(n, seed), meta=meta))
        out += group + [{**group[0], "c": not group[0]["c"]}]
    return out


def _length(sample: dict, params: dict) -> int:
    think = params.get("length_on") == "think" and sample.get("think", 0) > 0
    return sample["think"] if think else sample["n"]


def _score(name: str, params: dict, samples: list[dict], budget: int = BUDGET) -> list[float]:
    return REWARDS.get(name)(make_input(samples, budget), **params).score_B.tolist()


def _pairs(samples: list[dict]):
    for i, a in enumerate(samples):
        for j, b in enumerate(samples):
            if i != j and a["g"] == b["g"]:
                yield i, j, a, b


@pytest.mark.parametrize(("name", "params"), MONOTONE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MONOTONE)])
@SETTINGS
@given(samples=batches())
def test_shorter_correct_never_scores_lower(name, params, samples):
    r = _score(name, params, samples)
    for i, j, a, b in _pairs(samples):
        if a["c"] and b["c"] and _length(a, params) < _length(b, params):
            assert r[i] >= r[j] - EPS, (a, b, r[i], r[j])


@pytest.mark.parametrize(("name", "params", "peak"), PEAKED, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(PEAKED)])
@SETTINGS
@given(samples=batches())
def test_peaked_rewards_rise_to_the_target_then_fall(name, params, peak, samples):
    """l1_exact, tlts triangular and surrogate reward a target length: closer to it is never worse."""
    r = _score(name, params, samples)
    for i, j, a, b in _pairs(samples):
        la, lb = _length(a, params), _length(b, params)
        if a["c"] and b["c"] and (lb < la <= peak or peak <= la < lb):
            assert r[i] >= r[j] - EPS, (a, b, r[i], r[j])


@pytest.mark.parametrize(("name", "params"), MONOTONE + [p[:2] for p in PEAKED] + OTHERS)
@SETTINGS
@given(samples=batches())
def test_wrong_never_outscores_correct_of_the_same_length(name, params, samples):
    r = _score(name, params, samples)
    for i, j, a, b in _pairs(samples):
        same = a["n"] == b["n"] and a.get("think") == b.get("think") and a["ids"] == b["ids"]
        if a["c"] and not b["c"] and same:
            assert r[j] <= r[i] + EPS, (a, b, r[i], r[j])


@SETTINGS
@given(samples=batches(), scale=st.floats(0.0, 1.0))
def test_truncation_term_alone_ranks_a_truncated_wrong_above_a_truncated_correct(samples, scale):
    """The documented exception: -(1 - s)·c on truncated samples; math_correct + truncation restores the order."""
    x = make_input(samples, BUDGET)
    term = REWARDS.get("truncation")(x, truncation_reward_scale=scale).score_B
    total = REWARDS.get("math_correct")(x).score_B + term
    for i, j, a, b in _pairs(samples):
        if a["c"] and not b["c"] and a["n"] == b["n"] == BUDGET:
            assert float(term[j] - term[i]) == pytest.approx(1.0 - scale, abs=EPS)
            assert float(total[i] - total[j]) == pytest.approx(scale, abs=EPS)


# (name, params, range of lengths over which the score strictly depends on the token count)
STRICT = [
    ("overlong", {"max_len": 1000, "buffer": 1000}, (1, 900)),
    ("l1_exact", {}, (1, 900)),
    ("l1_max", {"alpha": 1e-3}, (501, 900)),
    ("l1_max", {"form": "code", "alpha": 1e-3}, (1, 900)),
    ("cosine", {}, (1, 900)),
    ("tlts_triangular", {}, (1, 900)),
    ("surrogate", {}, (1, 400)),
    ("kimi", {}, (2, 900)),
    ("shorter_better", {}, (2, 900)),
]


@pytest.mark.parametrize(("name", "params", "lo_hi"), STRICT, ids=[n for n, _, _ in STRICT])
@SETTINGS
@given(data=st.data())
def test_length_is_token_count_not_characters(name, params, lo_hi, data):
    n1, n2 = data.draw(st.lists(st.integers(*lo_hi), min_size=2, max_size=2, unique=True))
    pad = data.draw(st.integers(1, 2000))
    # Anchors (correct, 1 token; wrong, 1000 tokens) fix the group's min, max and SOL for the group rewards.
    anchors = [s(True, 1), s(False, 1000, trunc=False)]
    same_text = _score(name, params, [s(True, n1), s(True, n2), *anchors], budget=1000)
    assert abs(same_text[0] - same_text[1]) > 1e-7, "same text, other token count: the score must change"
    other_text = _score(name, params, [s(True, n1), s(True, n1, text="x" * pad + " " + RIGHT), *anchors], 1000)
    assert other_text[0] == other_text[1], "same token count, other character count: same score"


@SETTINGS
@given(n1=st.integers(2, 500), n2=st.integers(2, 500))
def test_arora_zanette_lengths_are_tokens(n1, n2):
    """Two correct answers with the same text: z = -1 / +1 by token count alone (equal counts: z = 0)."""
    r = _score("arora_zanette", {}, [s(True, n1), s(True, n2, text="y" * 999 + RIGHT)], budget=1000)
    assert (r[0] > r[1]) == (n1 < n2) and (r[0] == r[1]) == (n1 == n2)


@SETTINGS
@given(n=st.integers(4, 200), seed=st.integers(0, 3))
def test_repetition_reads_token_ids_not_text(n, seed):
    repeated, distinct = [s(False, n, ids=[seed] * n)], [s(False, n, ids=list(range(n)))]
    params = {"ngram_size": 2, "only_wrong": False}
    assert _score("repetition", params, repeated)[0] < _score("repetition", params, distinct)[0] == 0.0


@pytest.mark.parametrize("name", GROUPED)
@SETTINGS
@given(samples=batches())
def test_groups_are_scored_on_their_own(name, samples):
    together = _score(name, {}, samples)
    alone = [0.0] * len(samples)
    for g in {x["g"] for x in samples}:
        idx = [i for i, x in enumerate(samples) if x["g"] == g]
        for i, v in zip(idx, _score(name, {}, [samples[i] for i in idx]), strict=False):
            alone[i] = v
    assert torch.allclose(torch.tensor(together), torch.tensor(alone), atol=EPS)


@SETTINGS
@given(n=st.integers(1, BUDGET))
def test_surrogate_ignores_the_reference_answer(n):
    """No ground truth: a right and a wrong boxed answer of the same length score the same."""
    r = _score("surrogate", {}, [s(True, n), s(True, n, text="\\boxed{4}")])
    assert r[0] == r[1]

"""Length-shaping rewards: hand-computed cases from the formulas in docs/algorithms.md (§1.1, §5.1, §6.1, §9.1–9.8),
including group-relative batches with two or more groups, composition with math_correct, and parameter checks."""

from __future__ import annotations

import inspect
import math
from dataclasses import replace

import pytest
import torch

import rewards  # noqa: F401  (registers the built-ins)
from lenrl.catalog import _summary
from lenrl.reward import REWARDS
from tests.rewards._inputs import RIGHT, make_input
from tests.rewards._inputs import sample as s

sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
NEW = [
    "format",
    "truncation",
    "overlong",
    "l1_exact",
    "l1_max",
    "cosine",
    "tlts_triangular",
    "repetition",
    "kimi",
    "shorter_better",
    "arora_zanette",
    "surrogate",
]
REP_IDS = [1, 2, 3, 1, 2, 3, 1, 2]  # 3-grams: 6 in all, 3 distinct, 3 repeats covering positions 3..7

# (id, reward, params, samples, budget, expected score_B)
CASES = [
    # --- truncation (DLER): additive penalty -(1 - s)·c on truncated samples
    (
        "trunc-paper",
        "truncation",
        {},
        [s(1, 10), s(1, 10, trunc=True), s(0, 10, trunc=True), s(0, 10)],
        100,
        [0, -1, 0, 0],
    ),
    (
        "trunc-code",
        "truncation",
        {"truncation_reward_scale": 0.1},
        [s(1, 10), s(1, 10, trunc=True), s(0, 10, trunc=True)],
        100,
        [0, -0.9, 0],
    ),
    (
        "trunc-full",
        "truncation",
        {"truncation_reward_scale": 0.1, "include_correct": True},
        [s(1, 10), s(1, 10, trunc=True), s(0, 10, trunc=True), s(0, 10)],
        100,
        [1, 0.1, 0, 0],
    ),
    # --- overlong (DAPO): L=100, C=20 -> 0 up to 80, then (80 - ℓ)/20, -1 past 100
    (
        "overlong",
        "overlong",
        {"max_len": 100, "buffer": 20},
        [s(1, 80), s(1, 81), s(1, 90), s(0, 100), s(1, 120)],
        1000,
        [0, -0.05, -0.5, -1, -1],
    ),
    (
        "overlong-noclip-factor",
        "overlong",
        {"max_len": 100, "buffer": 20, "clip": False, "factor": 0.5},
        [s(1, 90), s(1, 120)],
        1000,
        [-0.25, -1.0],
    ),
    (
        "overlong-budget",
        "overlong",
        {"buffer": 20},
        [s(1, 90, budget=100), s(1, 90, budget=200), s(1, 190, budget=200)],
        1000,
        [-0.5, 0, -0.5],
    ),
    (
        "overlong-think",
        "overlong",
        {"max_len": 100, "buffer": 20, "length_on": "think"},
        [s(1, 95, think=50), s(1, 95, think=0)],
        1000,
        [0, -0.75],
    ),
    # --- L1 exact: 1[c] - 3e-4·|N - ℓ|
    (
        "l1-exact",
        "l1_exact",
        {},
        [s(1, 1000, trunc=False), s(1, 400), s(0, 1500, trunc=False)],
        1000,
        [1.0, 0.82, -0.15],
    ),
    (
        "l1-exact-meta",
        "l1_exact",
        {"target_key": "N"},
        [s(1, 400, meta={"N": 500}), s(0, 600, meta={"N": 500})],
        1000,
        [0.97, -0.03],
    ),
    ("l1-exact-nocorrect", "l1_exact", {"include_correct": False}, [s(1, 400), s(0, 400)], 1000, [-0.18, -0.18]),
    # --- L1 max: paper 1[c]·clip(α(N-ℓ)+0.5, 0, 1); code 1[c] + clip(α(N-ℓ), -1, 1)/2 + 1/2
    (
        "l1-max-paper",
        "l1_max",
        {},
        [s(1, 1000, trunc=False), s(1, 10), s(1, 3000), s(0, 10)],
        1000,
        [0.5, 0.797, 0.0, 0.0],
    ),
    (
        "l1-max-code",
        "l1_max",
        {"form": "code"},
        [s(1, 1000, trunc=False), s(1, 3000), s(0, 10), s(1, 10000)],
        1000,
        [1.5, 1.2, 0.6485, 1.0],
    ),
    # --- cosine: T=1000; correct 2 -> 1, wrong -10 -> 0; t + 16 >= T -> -10
    (
        "cosine",
        "cosine",
        {"max_len": 1000},
        [s(1, 0), s(1, 500), s(0, 500), s(0, 0), s(1, 984), s(1, 983), s(0, 250)],
        5000,
        [2.0, 1.5, -5.0, -10.0, -10.0, 1 + 0.5 * (1 + math.cos(0.983 * math.pi)), -5 * (1 + math.cos(math.pi / 4))],
    ),
    (
        "cosine-budget",
        "cosine",
        {"exceed_margin": 0},
        [s(1, 50, budget=100), s(1, 50, budget=200)],
        1000,
        [1.5, 1 + 0.5 * (1 + math.cos(math.pi / 4))],
    ),
    # --- TLTS: L=100; triangular ℓ/L, then 1 - (ℓ-L)/L, 0 past 2L
    ("tlts", "tlts_triangular", {}, [s(1, n) for n in (0, 50, 100, 150, 200, 250)], 100, [0, 0.5, 1, 0.5, 0, 0]),
    (
        "tlts-band",
        "tlts_triangular",
        {"shape": "band", "r_max": 2.0},
        [s(1, n) for n in (0, 50, 100, 150, 250)],
        100,
        [2, 2, 2, 1, 0],
    ),
    (
        "tlts-meta-think",
        "tlts_triangular",
        {"budget_key": "B", "length_on": "think"},
        [s(0, 150, think=80, meta={"B": 100}), s(1, 100, meta={"B": 200})],
        1000,
        [0.8, 0.5],
    ),
    # --- repetition over token ids (3-grams, 0.05)
    (
        "rep-dense",
        "repetition",
        {"ngram_size": 3, "only_wrong": False},
        [s(1, 8, ids=REP_IDS), s(1, 4, ids=[1, 2, 3, 4]), s(1, 2, ids=[1, 1])],
        1000,
        [-0.25, 0, 0],
    ),
    (
        "rep-count",
        "repetition",
        {"ngram_size": 3, "mode": "count", "only_wrong": False},
        [s(1, 8, ids=REP_IDS)],
        1000,
        [-0.15],
    ),
    (
        "rep-fraction",
        "repetition",
        {"ngram_size": 3, "mode": "fraction", "only_wrong": False},
        [s(1, 8, ids=REP_IDS)],
        1000,
        [-0.025],
    ),
    ("rep-only-wrong", "repetition", {"ngram_size": 3}, [s(1, 8, ids=REP_IDS), s(0, 8, ids=REP_IDS)], 1000, [0, -0.25]),
    # --- Kimi: λ = 0.5 - (ℓ - min)/(max - min); correct λ, wrong min(0, λ); three groups
    (
        "kimi",
        "kimi",
        {},
        [s(1, 10, 0), s(0, 15, 0), s(1, 30, 0), s(0, 30, 0), s(1, 100, 1), s(1, 100, 1), s(0, 10, 2), s(0, 50, 2)],
        1000,
        [0.5, 0, -0.5, -0.5, 0, 0, 0, -0.5],
    ),
    (
        "kimi-full",
        "kimi",
        {"include_correct": True},
        [s(1, 10, 5), s(0, 15, 5), s(1, 30, 5), s(1, 7, 6)],
        1000,
        [1.5, 0, 0.5, 1],
    ),
    # --- ShorterBetter: 2·1[c] - 0.001·|ℓ - SOL|; SOL = shortest correct, else the group mean
    (
        "shorter-better",
        "shorter_better",
        {},
        [s(1, 100, 0), s(1, 300, 0), s(0, 50, 0), s(0, 100, 1), s(0, 300, 1)],
        1000,
        [2, 1.8, -0.05, -0.1, -0.1],
    ),
    # --- Arora & Zanette: 1 - 0.1·σ(z) over the group's correct; population std
    (
        "arora",
        "arora_zanette",
        {},
        [s(1, 100, 0), s(1, 300, 0), s(0, 50, 0), s(1, 100, 1), s(1, 100, 2, trunc=True), s(1, 200, 2)],
        1000,
        [1 - 0.1 * sig(-1), 1 - 0.1 * sig(1), 0, 0.95, 0, 0.95],
    ),
    (
        "arora-no-eos-check",
        "arora_zanette",
        {"check_eos": False, "alpha": 0.4},
        [s(1, 100, 2, trunc=True), s(1, 200, 2)],
        1000,
        [1 - 0.4 * sig(-1), 1 - 0.4 * sig(1)],
    ),
    # --- Surrogate: L_max=1000, p=0.5; R_f + R_l if format, else min(0, R_l)
    (
        "surrogate",
        "surrogate",
        {"max_len": 1000},
        [s(1, n) for n in (0, 250, 500, 750, 1000, 1500)] + [s(0, 250), s(0, 1000)],
        5000,
        [1.0, 1.75, 2.0, 1.5, 0.0, 0.0, 0.0, -1.0],
    ),
    (
        "surrogate-polyline-p",
        "surrogate",
        {"max_len": 1000, "shape": "polyline"},
        [s(1, 250), s(1, 750)],
        5000,
        [1.5, 1.0],
    ),
    ("surrogate-p08", "surrogate", {"max_len": 1000, "p": 0.8}, [s(1, 400)], 5000, [1 + 1 - (1 - 0.4 / 0.8) ** 2]),
    (
        "surrogate-code",
        "surrogate",
        {"max_len": 1000, "format_weight": 0.5, "soft_format": True},
        [s(1, 500, text="<think>a</think>\\boxed{3}"), s(1, 500), s(1, 500, text="\\boxed{(}")],
        5000,
        [2.0, 1.5, 0],
    ),
    ("surrogate-budget", "surrogate", {}, [s(1, 50, budget=100), s(1, 50, budget=200)], 1000, [2.0, 1.75]),
    # --- format
    (
        "format-think",
        "format",
        {},
        [
            s(1, 5, text="<think>a</think>\\boxed{3}"),
            s(1, 5, text="a</think>\\boxed{3}", prompt="<think>\n"),
            s(1, 5, text="a</think>\\boxed{3}"),
            s(1, 5, text="<think>a</think><think>b</think>\\boxed{3}"),
            s(1, 5, text="</think><think>\\boxed{3}"),
            s(0, 5, text="<think>a</think> no box"),
        ],
        1000,
        [1, 1, 0, 0, 0, 0],
    ),
    ("format-mean", "format", {"mode": "mean"}, [s(1, 5, text="a</think>\\boxed{3}")], 1000, [0.5]),
    (
        "format-think-answer",
        "format",
        {"tags": ["think", "answer"], "mode": "mean"},
        [
            s(1, 5, text="<think>a</think><answer>\\boxed{3}</answer>"),
            s(1, 5, text="<answer>\\boxed{3}</answer><think>a</think>"),
        ],
        1000,
        [1, 0.75],
    ),
    (
        "format-answer-fallback",
        "format",
        {"tags": ["answer"], "fallback": "last_number"},
        [s(1, 5, text="<answer>42</answer>"), s(1, 5, text="7 <answer>x</answer>")],
        1000,
        [1, 0],
    ),
    ("format-answer-only", "format", {"tags": []}, [s(1, 5), s(0, 5)], 1000, [1, 0]),
    (
        "format-sympy",
        "format",
        {"tags": [], "sympy": True},
        [s(1, 5, text="\\boxed{x^2}"), s(1, 5, text="\\boxed{(}")],
        1000,
        [1, 0],
    ),
    ("format-nothing", "format", {"tags": [], "require_answer": False}, [s(0, 5)], 1000, [1]),
]


@pytest.mark.parametrize(
    ("name", "params", "samples", "budget", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cases(name, params, samples, budget, expected):
    out = REWARDS.get(name)(make_input(samples, budget), **params)
    assert out.score_B.dtype == torch.float32 and out.score_B.shape == (len(samples),)
    assert out.score_B.tolist() == pytest.approx(expected, abs=1e-5)
    for part in out.parts.values():
        assert part.shape == (len(samples),)


def test_sympy_check_gives_up_on_one_answer_after_its_parse_limit():
    """`surrogate` and `format(sympy=True)` parse each answer with math-verify inside one chunk task: a
    pathological answer (thousands of nested braces) costs SYMPY_PARSE_TIMEOUT_S, not math-verify's 5 s
    default, and only that sample loses its format score."""
    import gc
    import time

    from rewards.format import SYMPY_PARSE_TIMEOUT_S

    nested = "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}"
    x = make_input([s(1, 500), s(1, 500, text=nested), s(1, 500)], 5000)
    REWARDS.get("surrogate")(make_input([s(1, 500)]), max_len=1000)  # math-verify imported (not timed)
    # hypothesis (the property tests in this process) adds a gc callback: a SIGALRM timeout raised inside it
    # is swallowed ("Exception ignored") and the parse runs on. Reward workers have no such callback.
    callbacks = list(gc.callbacks)
    gc.callbacks.clear()
    try:
        t0 = time.monotonic()
        out = REWARDS.get("surrogate")(x, max_len=1000)
        assert time.monotonic() - t0 < SYMPY_PARSE_TIMEOUT_S + 1.5
        fmt = REWARDS.get("format")(x, tags=[], sympy=True)
    finally:
        gc.callbacks.extend(callbacks)
    assert out.parts["format"].tolist() == [1.0, 0.0, 1.0]
    assert out.score_B.tolist() == pytest.approx([2.0, 0.0, 2.0])  # unparsable: min(0, R_l) = 0 at x = p
    assert fmt.parts["answer"].tolist() == [1.0, 1.0, 1.0] and fmt.score_B.tolist() == [1.0, 0.0, 1.0]


def test_truncation_composes_with_math_correct():
    """math_correct + truncation (equal weights) == DLER's c·(s if truncated else 1)."""
    x = make_input([s(1, 10), s(1, 100, trunc=True), s(0, 100, trunc=True), s(0, 10)], budget=100)
    for scale in (0.0, 0.1, 0.5):
        term = REWARDS.get("truncation")(x, truncation_reward_scale=scale).score_B
        total = REWARDS.get("math_correct")(x).score_B + term
        assert total.tolist() == pytest.approx([1, scale, 0, 0])


@pytest.mark.parametrize("name", ["kimi", "shorter_better", "arora_zanette"])
def test_groups_are_independent_and_interleaving_is_irrelevant(name):
    a = [s(1, 100, 0), s(0, 40, 0), s(1, 300, 0), s(1, 220, 0)]
    b = [s(1, 10, 1), s(0, 900, 1), s(0, 30, 1)]
    fn = REWARDS.get(name)
    alone = fn(make_input(a)).score_B.tolist() + fn(make_input(b)).score_B.tolist()
    order = [0, 4, 1, 5, 2, 6, 3]
    mixed = fn(make_input([(a + b)[i] for i in order])).score_B.tolist()
    assert [mixed[order.index(i)] for i in range(7)] == pytest.approx(alone)


def test_empty_batch():
    for name in NEW:
        params = {"buffer": 1} if name == "overlong" else {}
        assert REWARDS.get(name)(make_input([]), **params).score_B.shape == (0,)


def test_registered_with_keyword_only_defaults_and_a_paper_summary():
    """Every length reward runs with its defaults, and the paper its catalog line cites is one that
    docs/algorithms.md describes (so `lenrl algos`, the README table and the docs name the same papers)."""
    import re
    from pathlib import Path

    documented = set(re.findall(r"\d{4}\.\d{5}", (Path(__file__).parents[2] / "docs" / "algorithms.md").read_text()))
    for name in NEW:
        REWARDS.check_params(name, {})  # every parameter has a default
        cited = re.findall(r"arXiv (\d{4}\.\d{5})", _summary(REWARDS.get(name)))
        assert cited, f"{name}: the catalog line cites no arXiv id"
        assert set(cited) <= documented, f"{name}: {set(cited) - documented} not in docs/algorithms.md"


BAD = [
    ("truncation", {"truncation_reward_scale": 1.5}),
    ("truncation", {"truncation_reward_scale": -0.1}),
    ("surrogate", {"fallback": "first_number"}),
    ("overlong", {"buffer": 0}),
    ("overlong", {"buffer": -5}),
    ("overlong", {"max_len": 0}),
    ("overlong", {"max_len": 100, "buffer": 200}),
    ("overlong", {"factor": -1.0}),
    ("overlong", {"length_on": "chars"}),
    ("overlong", {"buffer": 2000}),  # larger than the sample's budget (1000)
    ("l1_exact", {"alpha": -1e-4}),
    ("l1_exact", {"target_key": "N"}),
    ("l1_max", {"delta": 2.0}),
    ("l1_max", {"form": "both"}),
    ("l1_max", {"alpha": float("nan")}),
    ("cosine", {"max_len": 0}),
    ("cosine", {"exceed_margin": -1}),
    ("tlts_triangular", {"r_max": -1.0}),
    ("tlts_triangular", {"shape": "box"}),
    ("repetition", {"ngram_size": 0}),
    ("repetition", {"penalty": -0.05}),
    ("repetition", {"mode": "sparse"}),
    ("kimi", {"length_on": "chars"}),
    ("shorter_better", {"alpha": -1.0}),
    ("shorter_better", {"correct_reward": -2}),
    ("arora_zanette", {"alpha": -0.1}),
    ("arora_zanette", {"alpha": 1.5}),
    ("surrogate", {"p": 0.0}),
    ("surrogate", {"p": 1.5}),
    ("surrogate", {"shape": "linear"}),
    ("surrogate", {"format_weight": -1.0}),
    ("format", {"tags": "think"}),
    ("format", {"tags": ["think", "think"]}),
    ("format", {"mode": "any"}),
    ("format", {"fallback": "x"}),
]


@pytest.mark.parametrize(("name", "params"), BAD, ids=[f"{n}-{next(iter(p))}" for n, p in BAD])
def test_bad_parameters_raise_one_line_value_errors(name, params):
    with pytest.raises(ValueError, match=f"^{name}: ") as e:
        REWARDS.get(name)(make_input([s(1, 10), s(0, 20)]), **params)
    assert "\n" not in str(e.value)


def test_bad_budget_raises():
    x = make_input([s(1, 10, budget=0)])
    with pytest.raises(ValueError, match="tlts_triangular: budget"):
        REWARDS.get("tlts_triangular")(x)


GRADED = ["truncation", "l1_exact", "l1_max", "cosine", "repetition", "kimi", "shorter_better", "arora_zanette"]
GRADED += ["difficulty_truncation"]


def test_the_nine_length_rewards_read_the_verdict_and_never_grade(monkeypatch):
    """Correctness is x.correct_B, decided once by the run's grader: no length reward extracts or verifies
    an answer again (before, each called math_correct's grading, DA-DLER three times per sample), and
    none has its own grading parameters any more."""
    import rewards.math_correct as mc

    def no_grading(*args, **kwargs):
        raise AssertionError("a length reward graded an answer again")

    monkeypatch.setattr(mc, "extract_answer", no_grading)
    monkeypatch.setattr(mc, "is_equivalent", no_grading)
    # the text says "right" everywhere; the verdict says otherwise for half: the verdict wins
    rows = [(1, 100, 0, True), (0, 90, 0, False), (1, 70, 1, False), (1, 80, 1, False)]
    samples = [s(c, n, g, trunc=t, text=RIGHT) for c, n, g, t in rows]
    x = make_input(samples, budget=100)
    flipped = make_input([{**x_, "c": not x_["c"]} for x_ in samples], budget=100)
    for name in GRADED:
        fn = REWARDS.get(name)
        assert not {"fallback", "require_think_close"} & set(inspect.signature(fn).parameters), name
        a, b = fn(x).score_B, fn(flipped).score_B
        assert not torch.equal(a, b), name  # the score follows x.correct_B, not the text


def test_format_mean_is_the_mean_of_every_check_order_included():
    """tags=[think, answer] without the answer check: (tag_think + tag_answer + order) / 3."""
    fmt = REWARDS.get("format")
    x = make_input(
        [
            s(1, 5, text="<think>a</think><answer>x</answer>"),
            s(1, 5, text="<answer>x</answer><think>a</think>"),  # both well-formed, wrong order
            s(1, 5, text="<think>a</think> x"),  # no answer tag
        ]
    )
    out = fmt(x, tags=["think", "answer"], require_answer=False, mode="mean")
    assert out.score_B.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert set(out.parts) == {"tag_think", "tag_answer", "order"}
    assert fmt(x, tags=["think", "answer"], require_answer=False, mode="all").score_B.tolist() == [1.0, 0.0, 0.0]


def test_format_answer_check_follows_the_thinking_mode():
    fmt = REWARDS.get("format")
    samples = [s(1, 5, text="\\boxed{3}"), s(1, 5, text="a</think> \\boxed{3}")]
    off = fmt(make_input(samples), tags=[]).score_B.tolist()
    on = fmt(replace(make_input(samples), thinking=True), tags=[]).score_B.tolist()
    assert off == [1.0, 1.0] and on == [0.0, 1.0]  # thinking: no `</think>`, no answer
    tagged = [s(1, 5, text="<think>a</think><answer>\\boxed{3}</answer>")]  # the tag content is the answer
    assert fmt(replace(make_input(tagged), thinking=True), tags=["answer"]).score_B.tolist() == [1.0]

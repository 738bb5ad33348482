"""RewardRunner: one grading per sample (per-sample timeouts, errors scored wrong), weighted combination in
spawned worker processes, whole groups per chunk, NaN handling, chunk timeouts (worker killed and
replaced), plugin errors, and config validation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.testing import assert_close

from lenrl.errors import LenrlError
from lenrl.reward import RewardInput
from lenrl.reward_runner import RewardRunner, group_chunks

PLUGINS = Path(__file__).parent / "reward_plugins.py"
MOD = "tests.reward_plugins"


@dataclass(frozen=True)
class Spec:
    name: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


def make_input(
    group_ids: list[int],
    lens: list[int] | None = None,
    meta: list[dict] | None = None,
    completions: list[str] | None = None,
    answers: list[str] | None = None,
) -> RewardInput:
    n = len(group_ids)
    sizes = {g: group_ids.count(g) for g in group_ids}
    meta = meta or [{} for _ in range(n)]
    return RewardInput(
        prompts=["q"] * n,
        completions=completions or ["c"] * n,
        completion_ids=[[1, 2]] * n,
        answers=answers or ["1"] * n,
        meta=[{"group_size": sizes[g], **m} for g, m in zip(group_ids, meta, strict=False)],
        response_len_B=torch.tensor(lens or [2] * n),
        think_len_B=torch.zeros(n, dtype=torch.long),
        truncated_B=torch.zeros(n, dtype=torch.bool),
        group_id_B=torch.tensor(group_ids),
        budget_B=torch.full((n,), 100),
    )


@pytest.fixture(scope="module")
def runner():
    """One pool for several tests: spawning workers (each imports torch) is the slow part."""
    specs = [
        Spec(f"{PLUGINS}:length", weight=0.5, params={"scale": 2.0}),
        Spec(f"{MOD}:constant", weight=-1.0, params={"value": 3.0}),
        Spec(f"{MOD}:group_whole", weight=0.0),
        Spec(f"{MOD}:maybe_nan", weight=10.0),
        Spec("math_correct", weight=0.0),
        Spec(f"{MOD}:misbehave", weight=100.0),
    ]
    with RewardRunner(specs, num_workers=2, timeout_s=20.0, on_error="zero") as r:
        yield r


# Interleaved groups of different sizes: chunks must still hold whole groups.
GIDS = [7, 3, 7, 3, 9, 9, 9, 7, 1, 3]
LENS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def expected_scores(ok: list[bool]) -> torch.Tensor:
    """length*0.5 - 3 + maybe_nan*10 (NaN -> 0 where i % 3 == 0) + 100 where misbehave succeeded."""
    rows = enumerate(zip(LENS, ok, strict=False))
    return torch.tensor([0.5 * 2.0 * n - 3.0 + (0.0 if i % 3 == 0 else 20.0) + 100.0 * o for i, (n, o) in rows])


def test_weighted_sum_groups_nan_and_metrics(runner):
    na = [{"na": i % 3 == 0} for i in range(10)]
    out = runner.score(make_input(GIDS, LENS, na, completions=["\\boxed{1}", "\\boxed{2}"] * 5))
    assert_close(out.score_B, expected_scores([True] * 10))
    # correct_B is the grader's (math, gold "1"), whatever the plugins return
    assert_close(out.correct_B, torch.tensor([True, False] * 5))
    m = out.metrics
    assert m["reward/length"] == pytest.approx(2.0 * sum(LENS) / 10)
    assert m["reward/length/half"] == pytest.approx(sum(LENS) / 10)
    assert m["reward/group_whole"] == 1.0
    assert m["reward/group_whole/chunk"] < 10  # the batch really was split
    assert m["reward/maybe_nan"] == 2.0  # NaN entries do not count in the mean
    assert m["reward/math_correct"] == 0.5 and m["reward/math_correct/boxed"] == 1.0
    assert m["reward/errors"] == 0.0 and m["reward/timeouts"] == 0.0


def test_on_error_zero_scores_chunk_zero_and_counts(runner):
    na = [{"na": i % 3 == 0, "boom": g == 9} for i, g in enumerate(GIDS)]
    out = runner.score(make_input(GIDS, LENS, na))
    failed = set(next(c for c in group_chunks(torch.tensor(GIDS), 2) if 4 in c))  # group 9's chunk
    assert 0 < len(failed) < 10
    assert_close(out.score_B, expected_scores([i not in failed for i in range(10)]))
    assert out.metrics["reward/errors"] == 1.0
    assert out.metrics["reward/misbehave"] == 1.0  # the failed chunk is NaN, not 0, in the mean


def test_group_chunks_whole_and_balanced():
    gids = torch.tensor([0, 1, 0, 2, 1, 3, 3, 2, 0])
    chunks = group_chunks(gids, 2)
    assert sorted(i for c in chunks for i in c) == list(range(9))
    assert len(chunks) == 2
    for c in chunks:
        for other in chunks:
            if other is not c:
                assert not {int(gids[i]) for i in c} & {int(gids[i]) for i in other}
    assert group_chunks(torch.tensor([5, 5, 5]), 4) == [[0, 1, 2]]


def test_errors_and_timeout_then_runner_recovers():
    with RewardRunner([Spec(f"{MOD}:misbehave")], num_workers=1, timeout_s=1.0) as runner:
        with pytest.raises(LenrlError) as e:
            runner.score(make_input([5, 5, 6], meta=[{}, {}, {"boom": True}]))
        msg = str(e.value)
        assert "misbehave' failed: RuntimeError: kaboom second line" in msg and "\n" not in msg
        assert "sample 0 (group 5)" in msg
        t0 = time.monotonic()
        with pytest.raises(LenrlError, match=r"misbehave' timed out after 1s .* sample 0 \(group 4\)"):
            runner.score(make_input([4, 4], meta=[{"sleep": 60.0}, {}]))
        assert time.monotonic() - t0 < 10  # the hung worker was killed, not waited for
        out = runner.score(make_input([4, 4, 2], meta=[{}, {"score": 0.0}, {"score": -1.0}]))
        assert_close(out.score_B, torch.tensor([1.0, 0.0, -1.0]))
        assert_close(out.correct_B, torch.tensor([False, False, False]))  # the grader's: "c" is not "1"


def test_unknown_name_lists_available():
    with pytest.raises(LenrlError, match=r"unknown reward 'nope'.*available:.*math_correct"):
        RewardRunner([Spec("nope")])


def test_bad_params_and_bad_refs():
    with pytest.raises(LenrlError, match=r"has no parameter 'scal'"):
        RewardRunner([Spec(f"{PLUGINS}:length", params={"scal": 1.0})])
    with pytest.raises(LenrlError, match=r"'math_correct'.*no parameter 'fallbak'"):
        RewardRunner([Spec("math_correct", params={"fallbak": "none"})])
    with pytest.raises(LenrlError, match=r"cannot load reward"):
        RewardRunner([Spec(f"{MOD}:missing_fn")])
    with pytest.raises(LenrlError, match=r"cannot load reward"):
        RewardRunner([Spec("no/such/file.py:fn")])
    with pytest.raises(LenrlError, match=r"on_error"):
        RewardRunner([Spec("math_correct")], on_error="ignore")


def test_empty_batch_needs_no_workers():
    runner = RewardRunner([Spec("math_correct")])
    out = runner.score(make_input([]))
    assert out.score_B.shape == (0,) and math.isnan(out.metrics["reward/math_correct"])
    assert runner._pool is None


def test_plain_trl_reward_function_works_unchanged():
    from lenrl.config import RewardSpec
    from lenrl.reward_runner import RewardRunner

    gids, lens = [0, 0, 1, 1], [3, 5, 2, 4]
    x = make_input(gids, lens, [{"skip": i == 1} for i in range(4)])
    with RewardRunner([RewardSpec(f"{PLUGINS}:trl_style_length")], num_workers=1) as r:
        out = r.score(x)
    # every completion has 2 token ids; None -> not applicable -> 0 in the sum, left out of the mean
    assert_close(out.score_B, torch.tensor([-0.2, 0.0, -0.2, -0.2]))
    assert out.metrics["reward/trl_style_length"] == pytest.approx(-0.2)


def test_correctness_gated_shaping():
    from lenrl.config import RewardSpec
    from lenrl.reward_runner import RewardRunner

    x = make_input([0, 0, 1, 1], [2, 4, 6, 8], completions=["\\boxed{1}", "no", "\\boxed{1}", "x"])
    specs = [RewardSpec("math_correct"), RewardSpec(f"{PLUGINS}:length", weight=-0.1, gate="correct")]
    with RewardRunner(specs, num_workers=1) as r:
        out = r.score(x)
        # length term (score = len) only on the correct answers 0 and 2: 1 - 0.1 * len
        assert_close(out.score_B, torch.tensor([1 - 0.2, 0.0, 1 - 0.6, 0.0]))
        wrong = RewardRunner([specs[0], RewardSpec(f"{PLUGINS}:length", weight=-0.1, gate="wrong")], num_workers=1)
        with wrong:
            assert_close(wrong.score(x).score_B, torch.tensor([1.0, -0.4, 1.0, -0.8]))


def test_groups_selector_applies_a_reward_to_the_top_groups_of_the_whole_batch():
    """GRPO-λ: 2 workers score separate chunks, but the top-λ ranking runs over the whole batch."""
    from lenrl.config import FnSpec, RewardSpec

    # group ratios: 0 -> 1/2, 1 -> 1, 2 -> 0, 3 -> 1/2
    gids = [0, 0, 1, 1, 2, 2, 3, 3]
    comp = ["\\boxed{1}", "no", "\\boxed{1}", "\\boxed{1}", "no", "no", "no", "\\boxed{1}"]
    x = make_input(gids, [1, 2, 3, 4, 5, 6, 7, 8], completions=comp)
    length = f"{PLUGINS}:length"

    def score(groups):
        specs = [RewardSpec("math_correct"), RewardSpec(length, weight=-0.1, groups=groups)]
        with RewardRunner(specs, num_workers=2) as r:
            return r.score(x)

    c = torch.tensor([1.0, 0, 1, 1, 0, 0, 0, 1])
    top = score(FnSpec("top_fraction", {"fraction": 0.5}))  # k = 2: group 1, then group 0 (tie with 3, lower id)
    assert_close(top.score_B, c - 0.1 * torch.tensor([1.0, 2, 3, 4, 0, 0, 0, 0]))
    assert top.metrics["reward/length/groups_frac"] == pytest.approx(0.5)
    # relations: fraction 1 is the plain composition, fraction 0 the correctness reward alone
    assert_close(score(FnSpec("top_fraction", {"fraction": 1.0})).score_B, c - 0.1 * torch.arange(1.0, 9.0))
    assert_close(score(FnSpec("top_fraction", {"fraction": 0.0})).score_B, c)


COUNTING = f"{PLUGINS}:counting_grader"


def test_da_dler_grades_each_sample_exactly_once(tmp_path):
    """DA-DLER's reward list (math_correct + truncation + difficulty_truncation) costs one grader call per
    sample (it was three); the verdict reaches every reward and ScoredBatch.correct_B."""
    from lenrl.config import FnSpec, RewardSpec

    log_path = tmp_path / "calls.txt"
    texts = [f"answer-{i}" for i in range(8)]
    golds = [t if i % 3 else "other" for i, t in enumerate(texts)]  # samples 0, 3, 6 wrong
    x = make_input([0, 0, 0, 0, 1, 1, 1, 1], [10, 90, 30, 100, 10, 20, 30, 40], completions=texts, answers=golds)
    x = replace(x, truncated_B=torch.tensor([False, False, False, True, False, False, False, False]))
    specs = [
        RewardSpec("math_correct"),
        RewardSpec("truncation", params={"truncation_reward_scale": 0.0}),
        RewardSpec("difficulty_truncation", params={"thresholds": [0.5], "cap_fractions": [0.5]}),
    ]
    grader = FnSpec(COUNTING, {"log_path": str(log_path)})
    with RewardRunner(specs, grader=grader, num_workers=2) as r:
        out = r.score(x)
    calls = [line for line in log_path.read_text().splitlines() if line.startswith("answer-")]
    assert sorted(calls) == sorted(texts)  # once each (the warm-up and the load-time probe are not samples)
    c = [i % 3 != 0 for i in range(8)]
    assert out.correct_B.tolist() == c
    # group 0: p = 2/4 >= 0.5 -> cap 50: sample 1 (correct, 90 tokens, finished) loses its reward;
    # sample 3 is wrong, so its truncation costs nothing. group 1: p = 3/4 -> cap 50, all shorter.
    assert_close(out.score_B, torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]))


def test_one_pathological_answer_times_out_alone():
    """A power tower that math-verify needs ~5 s for: with a 2 s per-sample timeout it is scored wrong and
    counted, the good answers around it are graded, nothing raises, and the runner goes on."""
    from lenrl.config import RewardSpec

    comps = ["\\boxed{1}", "\\boxed{\\frac{1}{2}}", "\\boxed{9^{9^{9^{9}}}}", "\\boxed{3}", "\\boxed{5}"]
    golds = ["1", "0.5", "9^{9^{9^{8}}}", "4", "5"]
    x = make_input([0, 0, 1, 1, 2], completions=comps, answers=golds)
    with RewardRunner([RewardSpec("math_correct")], num_workers=2, timeout_s=2.0) as r:
        t0 = time.monotonic()
        out = r.score(x)
        assert time.monotonic() - t0 < 30
        assert out.correct_B.tolist() == [True, True, False, False, True]
        assert out.metrics["reward/timeouts"] == 1.0 and out.metrics["reward/errors"] == 0.0
        assert_close(out.score_B, torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0]))
        again = r.score(make_input([0, 1], completions=["\\boxed{2}", "\\boxed{7}"], answers=["2", "8"]))
        assert again.correct_B.tolist() == [True, False] and again.metrics["reward/timeouts"] == 0.0


def test_grader_timeout_and_error_score_wrong_whatever_on_error():
    from lenrl.config import FnSpec, RewardSpec

    x = make_input([0, 0, 1, 1], completions=["a", "sleep:60", "boom", "b"], answers=["a", "x", "x", "b"])
    with RewardRunner([RewardSpec("math_correct")], grader=FnSpec(COUNTING), num_workers=1, timeout_s=1.0) as r:
        out = r.score(x)  # on_error="raise" concerns reward chunks, never one sample's grading
    assert out.correct_B.tolist() == [True, False, False, True]
    assert out.metrics["reward/timeouts"] == 1.0 and out.metrics["reward/errors"] == 1.0


@pytest.mark.parametrize("thinking", [False, True])
def test_thinking_mode_decides_whether_a_response_without_think_close_has_an_answer(thinking):
    from lenrl.config import RewardSpec

    comps = ["\\boxed{4}", "<think>hm</think> \\boxed{4}", "<think>\\boxed{4}"]
    x = make_input([0, 0, 0], completions=comps, answers=["4"] * 3)
    with RewardRunner([RewardSpec("math_correct")], thinking=thinking, num_workers=1) as r:
        out = r.score(x)
    assert out.correct_B.tolist() == [not thinking, True, not thinking]
    assert out.metrics["reward/math_correct/boxed"] == pytest.approx(1.0 if not thinking else 1 / 3)


def test_gating_and_length_penalties_agree_on_correctness():
    """GSM8K-style grading (fallback last_number): the gate, the truncation penalty, the group filter's
    correct_B and math_correct all see the same verdict (before, each reward graded with its own params)."""
    from lenrl.config import FnSpec, RewardSpec

    x = make_input([0, 0, 0], [100, 100, 5], completions=["so 42", "so 41", "so 42"], answers=["42"] * 3)
    x = replace(x, truncated_B=torch.tensor([True, True, False]))
    specs = [
        RewardSpec("math_correct"),
        RewardSpec("truncation", params={"truncation_reward_scale": 0.25}),
        RewardSpec(f"{PLUGINS}:length", weight=-0.01, gate="correct"),
    ]
    with RewardRunner(specs, grader=FnSpec("math", {"fallback": "last_number"}), num_workers=1) as r:
        out = r.score(x)
    assert out.correct_B.tolist() == [True, False, True]
    # sample 0: 1 - 0.75 - 0.01 * 100; sample 1: wrong, nothing; sample 2: 1 - 0.01 * 5
    assert_close(out.score_B, torch.tensor([0.25 - 1.0, 0.0, 0.95]))


def test_bad_grader_fails_at_construction():
    from lenrl.config import FnSpec, RewardSpec

    with pytest.raises(LenrlError, match=r"unknown grader 'nope'"):
        RewardRunner([RewardSpec("math_correct")], grader=FnSpec("nope"))
    with pytest.raises(LenrlError, match=r"grader 'math'.*no parameter 'fallbak'"):
        RewardRunner([RewardSpec("math_correct")], grader=FnSpec("math", {"fallbak": "none"}))
    with pytest.raises(LenrlError, match=r"^config grader: math: unknown fallback 'last_numbr'"):
        RewardRunner([RewardSpec("math_correct")], grader=FnSpec("math", {"fallback": "last_numbr"}))


def test_one_grader_check_at_config_load_and_at_construction(tmp_path):
    """A custom grader that raises anything (here a TypeError) is refused in one line naming the config key
    and the exception, the same line at config load and at RewardRunner construction (before: a traceback
    at load, and a different probe, `fn("", "")`, which this grader passed, at construction)."""
    from lenrl.config import FnSpec, RewardSpec
    from lenrl.config_checks import load_checked_config

    plugin = tmp_path / "graders.py"
    plugin.write_text(
        "def typo(completion, answer, *, thinking, fallback='none'):\n"
        "    return completion.strip() == answer if not completion else completion + 1\n"
    )
    ref = f"{plugin}:typo"
    line = r"^config grader: TypeError: can only concatenate str \(not \"int\"\) to str$"
    with pytest.raises(LenrlError, match=line):
        load_checked_config("grpo", None, [f"grader.name={ref}"])
    with pytest.raises(LenrlError, match=line):
        RewardRunner([RewardSpec("math_correct")], grader=FnSpec(ref))


def test_pathological_answers_cost_a_reward_chunk_one_short_parse_each():
    """format(sympy=True) parses every answer of its chunk with math-verify inside ONE task. Three answers of
    thousands of nested braces took math-verify's default 5 s each (15 s > the 10 s timeout: the step
    stopped); now each parse stops after SYMPY_PARSE_TIMEOUT_S, those samples score unparsable, the
    others normally, and nothing is counted as a failure."""
    from lenrl.config import RewardSpec
    from rewards.format import SYMPY_PARSE_TIMEOUT_S

    nested = "{" * 3000 + "1" + "}" * 3000
    comps = ["\\boxed{\\frac{1}{2}}", f"\\boxed{{{nested}}}", "\\boxed{x+1}", f"\\boxed{{{nested}}}", "no box"]
    comps += [f"\\boxed{{{nested}}}", "\\boxed{3}"]
    golds = [nested if nested in c else "7" for c in comps]  # graded by the exact-match shortcut: no slow grading
    x = make_input([0, 0, 1, 1, 2, 2, 3], completions=comps, answers=golds)
    spec = RewardSpec("format", params={"tags": [], "sympy": True})
    with RewardRunner([spec], num_workers=1, timeout_s=10.0) as r:
        r.score(make_input([0], completions=["\\boxed{2}"]))  # workers started and warm (not timed)
        t0 = time.monotonic()
        out = r.score(x)
        elapsed = time.monotonic() - t0
    assert out.correct_B.tolist() == [False, True, False, True, False, True, False]
    assert out.metrics["reward/errors"] == 0.0 and out.metrics["reward/timeouts"] == 0.0
    assert_close(out.score_B, torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
    assert out.metrics["reward/format/answer"] == pytest.approx(6 / 7)  # unparsable, but an answer was given
    assert elapsed < 3 * SYMPY_PARSE_TIMEOUT_S + 6, elapsed

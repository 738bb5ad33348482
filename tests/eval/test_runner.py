"""The evaluation runner's orchestration with a fake engine and fake grader (the real engine and reward
pool are covered by tests/eval/test_eval_e2e.py): forcing requests, records, resume, summary, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lenrl.errors import LenrlError
from lenrl.eval.benchmarks import check_benchmark_names, load_benchmark, parse_data_args
from lenrl.eval.report import write_report
from lenrl.eval.runner import PLAIN_FORCE, THINK_FORCE, BenchmarkEval, EvalSettings
from lenrl.eval.samples import Forced, SampleFile, SampleRecord
from lenrl.eval.summary import summarize
from lenrl.records import GenerationStats, Problem, Prompt, Rollout
from lenrl.reward_runner import ScoredBatch

EOS_AT = {0: 3, 1: None}  # question 0 stops after 3 tokens, question 1 runs to the cap


class Tok:
    """Token ids are characters' code points; decode joins them back."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


class FakeEngine:
    """Question q's response is 'a' * EOS_AT[q] (finished) or 'a' * max_tokens (cut); a forced
    continuation (prompt ending in the forcing text) answers '7}'."""

    def __init__(self):
        self.calls = []

    def generate(self, requests, step):
        self.calls.append((step, requests))
        out = []
        for q in requests:
            for _ in range(q.n):
                if "".join(map(chr, q.prompt_ids)).endswith(PLAIN_FORCE):
                    ids, reason = [ord("7"), ord("}")], "stop"
                else:
                    stop = EOS_AT[q.group_id % 2]
                    t = q.max_tokens if stop is None else min(stop, q.max_tokens)
                    ids, reason = [ord("a")] * t, "stop" if stop is not None and stop <= q.max_tokens else "length"
                out.append(
                    Rollout(
                        q.group_id,
                        q.prompt_ids,
                        ids,
                        [0.0] * len(ids),
                        reason,
                        q.max_tokens,
                        0,
                        "".join(map(chr, ids)),
                        0,
                    )
                )
        return out, GenerationStats(seconds=0.5, tokens=sum(r.response_len for r in out))


class Grader:
    """Correct iff the completion contains a boxed 7 (forced) or is exactly 'aaa' (question 0's answer)."""

    thinking = False

    def score(self, x):
        import torch

        ok = torch.tensor([("\\boxed{7}" in c) or c == "aaa" for c in x.completions])
        return ScoredBatch(ok.float(), ok, {"reward/errors": 0.0})


def _prompts(k=4):
    return [Prompt(Problem(f"q{i}", "x", "7"), f"P{i}", [ord("P"), ord(str(i))]) for i in range(k)]


def _eval(tmp_path, **kw):
    s = EvalSettings(n=2, max_tokens=8, budgets=(2, 4, 8), force_tokens=4, chunk=3, **kw)
    engine = FakeEngine()
    ev = BenchmarkEval(engine, Grader(), Tok(), s, extract=lambda t: "7" if "7" in t else None)
    return ev, engine


def test_forcing_requests_are_prefix_plus_forcing_text_and_curves_follow(tmp_path):
    ev, engine = _eval(tmp_path)
    summary = ev.run(_prompts(), tmp_path / "b", meta={"benchmark": "fake"})
    main_calls = [reqs for step, reqs in engine.calls if step == 0]
    assert [len(r) for r in main_calls] == [3, 1]  # chunked by 3 questions
    forced = [(step, q) for step, reqs in engine.calls if step > 0 for q in reqs]
    # budget 2 (step 1): every sample of both questions (q0 stops at 3 > 2); budgets 4, 8: only q1's samples
    q1_at_4 = [q for step, q in forced if step == 2]
    assert all("".join(map(chr, q.prompt_ids)) == "P1" + "aaaa" + PLAIN_FORCE for q in q1_at_4[:2])
    assert {q.group_id for step, q in forced if step == 1} == {0, 1, 2, 3, 4, 5, 6, 7}  # q * n + sample
    curve = {row["budget"]: row for row in summary["budget_curve"]}
    # truncation: only q0 / q2 (finished at 3 tokens, correct) count, and only from budget 3 up
    assert [curve[b]["truncation"] for b in (2, 4, 8)] == [0.0, 0.5, 0.5]
    # forcing: at 2 everything is forced and answers 7 -> all correct; at 4 and 8 q0 keeps its own answer
    assert [curve[b]["forcing"] for b in (2, 4, 8)] == [1.0, 1.0, 1.0]
    force_len = len(PLAIN_FORCE)
    assert curve[4]["mean_tokens_forcing"] == (3 * 4 + (4 + force_len + 2) * 4) / 8
    assert summary["accuracy"]["avg@k"] == 0.5 and summary["truncation_rate"] == 0.5
    assert summary["throughput"]["questions"] == 4 and summary["throughput"]["resumed_questions"] == 0
    lines = [json.loads(x) for x in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[2]["forced"]["4"] == {"correct": True, "tokens": 4 + force_len + 2}
    assert lines[0]["forced"] == {"2": {"correct": True, "tokens": 2 + force_len + 2}} and lines[0]["answer"] is None


def test_resume_skips_finished_questions_and_drops_torn_or_partial_ones(tmp_path):
    ev, _ = _eval(tmp_path)
    first = ev.run(_prompts(), tmp_path / "b", meta={})
    path = tmp_path / "b" / "samples.jsonl"
    lines = path.read_text().splitlines()
    # interrupted: question q3 lost its second sample and the file ends in a torn line
    path.write_text("\n".join(lines[:7]) + "\n" + lines[7][:20])
    ev2, engine2 = _eval(tmp_path)
    again = ev2.run(_prompts(), tmp_path / "b", meta={})
    assert [[q.group_id for q in reqs] for step, reqs in engine2.calls if step == 0] == [[3]]
    assert again["throughput"]["resumed_questions"] == 3 and again["budget_curve"] == first["budget_curve"]
    assert len(path.read_text().splitlines()) == 8


def test_resume_with_other_settings_is_refused(tmp_path):
    ev, _ = _eval(tmp_path)
    ev.run(_prompts(2), tmp_path / "b", meta={})
    other = BenchmarkEval(FakeEngine(), Grader(), Tok(), EvalSettings(n=3, max_tokens=8), extract=lambda t: None)
    with pytest.raises(LenrlError, match=r"other settings \(budgets, force_tokens, n\)"):
        other.run(_prompts(2), tmp_path / "b", meta={})


L1_INSTRUCTION = "Think for {target_len} tokens."


def test_target_lengths_are_recorded_per_sample_and_summarised(tmp_path):
    s = EvalSettings(n=2, max_tokens=8, chunk=3, instruction=L1_INSTRUCTION, target_len=(2, 6))
    ev = BenchmarkEval(FakeEngine(), Grader(), Tok(), s, extract=lambda t: None)
    prompts = [Prompt(Problem(f"q{i}", "x", "7", {"target_len": 4 + 2 * (i % 2)}), "P", [80]) for i in range(4)]
    summary = ev.run(prompts, tmp_path / "b", meta={})
    lines = [json.loads(x) for x in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    assert [r["target"] for r in lines] == [4, 4, 6, 6, 4, 4, 6, 6]
    assert json.loads((tmp_path / "b" / "settings.json").read_text())["target_len"] == [2, 6]
    # lengths 3 (q0, q2: EOS after 3) and 8 (q1, q3: cut at the cap) against targets 4 and 6:
    # |err| 1 and 2 -> 1.5; relative 1/4 and 2/6 -> 7/24; lengths follow targets exactly -> r = 1;
    # within 20%: 1 <= 0.8 no, 2 <= 1.2 no -> 0; over target: 8 > 6 -> 1/2
    lc = summary["length_control"]
    assert (lc["samples"], lc["mean_target"], lc["mean_abs_error"]) == (8, 5.0, 1.5)
    assert lc["mean_relative_error"] == pytest.approx(7 / 24) and lc["correlation"] == pytest.approx(1.0)
    assert (lc["within_tolerance"], lc["over_target"]) == (0.0, 0.5)
    (tmp_path / "b" / "summary.json").write_text(json.dumps({**summary, "benchmark": "b"}))
    report = write_report(tmp_path).read_text()
    assert "## Length control" in report and "| b | 5.0 | 1.5 | 29.2 | 1.000 | 0.0 | 50.0 |" in report


def test_without_targets_records_and_summaries_are_unchanged(tmp_path):
    """Evaluations without target lengths keep the settings.json, samples.jsonl lines and summary keys they
    had before `--target-len` existed (earlier output directories stay resumable)."""
    ev, _ = _eval(tmp_path)
    summary = ev.run(_prompts(2), tmp_path / "b", meta={})
    assert "length_control" not in summary and "target_len" not in summary["settings"]
    assert set(json.loads((tmp_path / "b" / "settings.json").read_text())) == {
        "n", "temperature", "top_p", "max_tokens", "seed", "budgets", "force_tokens", "force_text",
        "instruction", "system_prompt", "think_prefix", "thinking", "max_prompt_tokens",
    }  # fmt: skip
    line = json.loads((tmp_path / "b" / "samples.jsonl").read_text().splitlines()[0])
    assert "target" not in line and SampleRecord.from_json(line).target is None


def test_target_lengths_need_the_placeholder_and_a_valid_range():
    with pytest.raises(LenrlError, match=r"--target-len needs an --instruction with \{target_len\}"):
        EvalSettings(target_len=(16, 96))
    with pytest.raises(LenrlError, match=r"--target-len must be LOW,HIGH with 0 < LOW <= HIGH, got \(96, 16\)"):
        EvalSettings(instruction=L1_INSTRUCTION, target_len=(96, 16))


def test_thinking_is_the_one_switch_and_think_prefix_is_only_text():
    """`thinking` decides both grading and forcing; `think_prefix` is text added to the prompt. Before, a
    `<think>` prefix alone made forcing close </think> while grading read the whole text."""
    assert EvalSettings(thinking=True).forcing == THINK_FORCE  # the thinking mode alone closes </think>
    assert EvalSettings(thinking=True, think_prefix="<think>\n").forcing == THINK_FORCE
    assert EvalSettings(think_prefix="Let me see.").forcing == PLAIN_FORCE  # a prefix is not a mode
    assert EvalSettings().forcing == PLAIN_FORCE and EvalSettings(force_text="X").forcing == "X"
    assert EvalSettings(thinking=True).record()["thinking"] is True  # part of the protocol (resume compares it)
    with pytest.raises(LenrlError, match=r"^--think-prefix '<think>\\n' opens <think> but the thinking mode is off"):
        EvalSettings(think_prefix="<think>\n")


def test_grader_and_settings_must_agree_on_the_thinking_mode():
    with pytest.raises(LenrlError, match="thinking mode"):
        BenchmarkEval(FakeEngine(), Grader(), Tok(), EvalSettings(thinking=True), extract=lambda t: None)


@pytest.mark.parametrize("budgets", [(4, 2), (0, 2), (2, 2), (-1,), (4, 9)])
def test_budgets_must_be_increasing_positive_and_within_max_tokens(budgets):
    with pytest.raises(LenrlError, match="budget"):
        EvalSettings(max_tokens=8, budgets=budgets)


def _rec(qid, j, length, correct, finished=True, answer=None, forced=None):
    return SampleRecord(
        qid,
        j,
        0,
        5,
        length,
        0,
        "stop" if finished else "length",
        not finished,
        float(correct),
        correct,
        answer,
        "",
        forced or {},
    )


def test_summary_by_hand_with_aes():
    qs = [
        [_rec("a", 0, 10, True, answer="1"), _rec("a", 1, 30, False, answer="2", forced={"20": Forced(False, 27)})],
        [_rec("b", 0, 40, False, finished=False, forced={"20": Forced(True, 25)}), _rec("b", 1, 20, True, answer="1")],
    ]
    s = summarize(qs, [20], aes_base={"label": "base", "accuracy": 0.25, "length": 50.0})
    assert s["accuracy"]["avg@k"] == 0.5 and s["accuracy"]["pass@k"] == {"1": 0.5, "2": 1.0}
    assert s["length"]["all"]["mean"] == 25.0 and s["length"]["correct"]["mean"] == 15.0
    assert s["tokens_per_correct"] == 50.0 and s["truncation_rate"] == 0.25
    # at 20, truncation: finished within 20 and correct: a/0 (10) and b/1 (20) -> 2/4;
    # forcing: a/0 and b/1 keep their answers, a/1 (30 > 20) and b/0 (cut) are forced: F, T -> 3/4
    row = s["budget_curve"][0]
    assert row["truncation"] == 0.5 and row["mean_tokens_truncation"] == (10 + 20 + 20 + 20) / 4
    assert row["forcing"] == 0.75 and row["mean_tokens_forcing"] == (10 + 27 + 25 + 20) / 4
    # maj@1: a votes "1" (right), b votes None; maj@2: a ties "1"/"2" -> first, "1"; b: None, "1" -> "1"
    assert s["accuracy"]["maj@k"] == {"1": 0.5, "2": 1.0}
    # AES: dL = (50 - 25)/50 = 0.5, dA = (0.5 - 0.25)/0.25 = 1 -> 0.5 + 3 * 1 = 3.5
    assert s["aes"]["value"] == pytest.approx(3.5) and s["aes"]["baseline"] == "base"


def test_benchmark_names_and_data_arguments(tmp_path):
    assert parse_data_args(["x.jsonl"], ["math500"]) == {"math500": "x.jsonl"}
    assert parse_data_args(["gsm8k=a.jsonl"], ["math500", "gsm8k"]) == {"gsm8k": "a.jsonl"}
    with pytest.raises(LenrlError, match="NAME=PATH"):
        parse_data_args(["a.jsonl"], ["math500", "gsm8k"])
    with pytest.raises(LenrlError, match=r"unknown benchmark 'math5000'; built in: math500, aime24"):
        check_benchmark_names(["math5000"], {})
    check_benchmark_names(["mine"], {"mine": "f.jsonl"})  # any name with a file
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    with pytest.raises(LenrlError, match=r"bad.jsonl:1: missing field 'problem'"):
        load_benchmark("mine", str(bad))


def test_records_are_written_whatever_the_model_emits(tmp_path):
    """A completion that is not valid UTF-8 (lone surrogates, as Python decodes it) is written, the file
    stays valid UTF-8, and reading it back (resume, which also rewrites the file) gives the exact text."""
    bad = b"\xff\xfe \\boxed{7} \xc3\x28 \xc3\xa9t\xc3\xa9".decode("utf-8", errors="surrogateescape")
    rec = replace(_rec("a", 0, 3, True, answer="\udcff"), text=bad)
    f = SampleFile(tmp_path / "d", {"n": 1})
    f.resume(1)
    f.append([rec])
    raw = f.path.read_bytes()
    raw.decode("utf-8")  # strict: valid UTF-8
    assert "été" in raw.decode("utf-8")  # valid non-ASCII text stays readable, not escaped
    assert SampleFile(tmp_path / "d", {"n": 1}).resume(1) == {"a": [rec]}  # read back, and rewritten
    assert SampleFile(tmp_path / "d", {"n": 1}).resume(1) == {"a": [rec]}  # and read back again


def test_sample_file_round_trip(tmp_path):
    f = SampleFile(tmp_path / "d", {"n": 1})
    assert f.resume(1) == {}
    rec = _rec("a", 0, 3, True, forced={"2": Forced(False, 9)})
    f.append([rec])
    assert SampleFile(tmp_path / "d", {"n": 1}).resume(1) == {"a": [rec]}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--benchmarks", "math5000"], "unknown benchmark 'math5000'"),
        (["--benchmarks", "mine", "--data", "mine={bad}"], "bad.jsonl:1: missing field 'problem'"),
        (["--budgets", "64,32"], "--budgets must be strictly increasing positive integers, got [64, 32]"),
        (["--budgets", "a,b"], "--budgets must be a comma list of integers"),
        (["--budgets", "0,8"], "--budgets must be strictly increasing positive integers"),
        (["--budgets", "64,1024", "--max-tokens", "512"], "the largest budget 1024 exceeds --max-tokens 512"),
        (["--temperature", "0", "--n", "4"], "with --temperature 0 (greedy) needs --n 1, got --n 4"),
        (["--target-len", "16,96"], "--target-len needs an --instruction with {target_len}"),
        (["--target-len", "16"], "--target-len must be LOW,HIGH (two integers), got '16'"),
        (["--target-len", "0,9", "--instruction", "N={target_len}"], "0 < LOW <= HIGH, got (0, 9)"),
        (["--benchmarks", "testbed:default", "--instruction", "Think for {target_len} tokens."], "but problem"),
    ],
)
def test_lenrl_eval_bad_input_is_one_line_before_anything_starts(args, message, tmp_path, capsys):
    from lenrl.evaluate import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    out = tmp_path / "out"
    code = main([a.replace("{bad}", str(bad)) for a in args] + ["--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("lenrl: error: ") and message in err and "\n" not in err
    assert not out.exists()  # nothing half-written

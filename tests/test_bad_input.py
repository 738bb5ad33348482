"""Bad input: one-line errors before anything heavy starts, and no run directory left behind."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_train(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, str(REPO / "lenrl" / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(p, *fragments):
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [line for line in p.stderr.splitlines() if line.startswith("lenrl: error:")]
    assert len(lines) == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def base_args(tiny_model_dir, tmp_path):
    return [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'runs'}"]


def test_unknown_algorithm(tmp_path):
    p = run_train("--algo", "nope", cwd=tmp_path)
    assert_one_line_error(p, "unknown algorithm 'nope'", "grpo")


def test_missing_dataset_file(base_args, tmp_path):
    p = run_train(*base_args, f"data.source={tmp_path / 'missing.jsonl'}", cwd=tmp_path)
    assert_one_line_error(p, "missing.jsonl")
    assert not (tmp_path / "runs").exists()


def test_malformed_dataset_line_is_named(base_args, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": \n')
    p = run_train(*base_args, f"data.source={f}", cwd=tmp_path)
    assert_one_line_error(p, "bad.jsonl:2")
    assert not (tmp_path / "runs").exists()


def test_prompt_longer_than_limit(base_args, tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text('{"id": "q-long", "problem": "' + "seven " * 400 + '", "answer": "7"}\n')
    p = run_train(*base_args, f"data.source={f}", cwd=tmp_path)
    assert_one_line_error(p, "q-long", "256")
    assert not (tmp_path / "runs").exists()


def test_unreachable_ray_address(base_args, tmp_path):
    p = run_train(*base_args, cwd=tmp_path, env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert_one_line_error(p, "cannot reach the Ray cluster", "127.0.0.1:1")
    assert not (tmp_path / "runs").exists()


def test_config_errors_are_one_line(base_args, tmp_path):
    for override, fragment in [
        ("train.stepz=3", "train.stepz: unknown key"),
        ("train.steps=three", "train.steps: expected int"),
        ("rollout.n=0", "rollout.n: must be > 0"),
        ("algo.loss.params.clip_lo=0.1", "no parameter 'clip_lo'"),
        ("algo.advantage.name=nope", "unknown advantage estimator 'nope'"),
    ]:
        assert_one_line_error(run_train(*base_args, override, cwd=tmp_path), fragment)

"""`bash launch/local.sh` as a new user runs it: a local Ray head, `ray job submit --working-dir .`, the
driver in Ray's temporary copy of the checkout. The run's metrics and checkpoint must land where the user
asked (a relative output.dir: under the checkout, not inside Ray's copy, which is deleted with the job)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]


def test_local_sh_writes_the_run_under_the_checkout():
    out = f"runs/pytest-{uuid.uuid4().hex[:8]}"
    args = [
        "--algo", "dler", "model.name=testbed:default", "data.source=testbed:default", "train.steps=1",
        "train.prompts_per_step=2", "rollout.n=2", "rollout.max_tokens=32", "rollout.max_model_len=128",
        "data.max_prompt_tokens=64", f"output.dir={out}", "output.name=submitted", "output.tensorboard=false",
    ]  # fmt: skip
    try:
        p = subprocess.run(["bash", "launch/local.sh", *args], cwd=REPO, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
        run = REPO / out / "submitted"
        assert f"run directory {run}" in p.stdout  # the driver prints where the run goes, absolute
        assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
        assert (run / "checkpoint" / "COMPLETE").is_file() and (run / "checkpoint" / "model.safetensors").is_file()
    finally:
        shutil.rmtree(REPO / out, ignore_errors=True)

"""The speed benchmarks run end to end on their smallest settings (the figures they measure are not
asserted: speed lives in the scripts' reports, docs/benchmarks.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_vs_trl_runs_every_contender_and_writes_its_ratios(tmp_path):
    _run("vs_trl.py", "--model", "testbed:default", "--prompts", "2", "--group", "2", "--max-tokens", "16",
         "--steps", "2", "--plain-reps", "1", "--matmul-n", "256", "--out", str(tmp_path))  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    for name in ("lenrl", "trl", "vllm", "plain", "matmul"):
        assert "error" not in res["contenders"][name], res["contenders"][name]
    lenrl = res["contenders"]["lenrl"]
    assert lenrl["s_per_step"] > 0 and lenrl["learner_tok_s"] > 0 and 0 <= lenrl["pad_frac"] < 1
    assert lenrl["weight_sync_s"] > 0 and lenrl["peak_rss_gib"] > 0
    assert all(r["value"] is not None for r in res["ratios"].values())
    assert "| lenrl |" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_cost_growth_sweeps_and_plots(tmp_path):
    _run("cost_growth.py", "--groups", "2", "--max-tokens", "16", "--base-tokens", "16", "--base-group", "2",
         "--steps", "1", "--control-steps", "2", "--control-tokens", "96", "--dler-cap", "16", "--prompts", "2",
         "--out", str(tmp_path))  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["points"]) == {"G2_T16", "grpo_uncapped", "dler_cap", "curriculum"}
    for name, point in res["points"].items():
        assert "error" not in point, (name, point)
        assert point["time/step_s"] > 0
    assert (tmp_path / "cost_growth.png").stat().st_size > 10_000

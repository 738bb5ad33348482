"""`lenrl testbed compare`: every method resolves to a valid config with the shared settings; the results
table and plots are written from evaluation summaries."""

from __future__ import annotations

import json
from pathlib import Path

from lenrl.config import load_config
from lenrl.eval.samples import SampleRecord
from lenrl.eval.summary import summarize
from lenrl.testbed.compare import METHODS, parse_args, train_overrides
from lenrl.testbed.report import write_results


def test_every_method_gets_the_same_settings(tmp_path):
    args = parse_args(["--steps", "7", "--n", "4", "--cap", "64", "--max-tokens", "200"])
    for m in METHODS.values():
        cfg = load_config(m.algo, None, train_overrides(args, m, tmp_path / m.name))
        assert cfg.model.name == cfg.data.source == "testbed:default" and cfg.model.thinking
        assert (cfg.train.steps, cfg.rollout.n, cfg.train.seed) == (7, 4, 0)
        assert cfg.rollout.max_tokens == (64 if m.name in ("dler", "da_dler") else 200)
        assert cfg.output.name == m.name
    assert [r.name for r in load_config("grpo", None, train_overrides(args, METHODS["kimi"], tmp_path)).rewards] == [
        "math_correct",
        "kimi",
    ]


def _eval(out: Path, label: str, length: int, aes: float | None) -> None:
    recs = [
        [SampleRecord(f"testbed-test-0-{i:06d}:3+4-2", 0, 0, 10, length, 0, "stop", False, 1.0, i % 4 != 0, "5", "")]
        for i in range(8)
    ]
    s = {"benchmark": "testbed:default", "label": label, "settings": {"n": 1}, **summarize(recs, [])}
    if aes is not None:
        s["aes"] = {"value": aes}
    d = out / "evals" / label / "testbed:default"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps(s))


def test_results_table_and_plots(tmp_path):
    _eval(tmp_path, "start", 68, None)
    _eval(tmp_path, "dler", 34, 0.5)
    run = tmp_path / "runs" / "dler"
    run.mkdir(parents=True)
    (run / "compare.json").write_text(json.dumps({"train_seconds": 90}))
    (run / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"step": i, "len/mean": 60 - i, "reward/accuracy": 0.7}) for i in (1, 2))
    )
    text = write_results(tmp_path, ["start", "dler", "grpo"], METHODS).read_text()
    # 3+4-2: L* = 17, so 34 tokens is 2.00 x L*; accuracy 6/8
    assert "| dler | 0.750 | 34.0 | 34 | -50% | 2.00 | 0.000 | 2:0.75/34 | 0.500 | 1.5 |" in text
    assert "| start | 0.750 | 68.0 | 68 | — | 4.00 |" in text and "| grpo |" not in text
    assert (tmp_path / "pareto.png").stat().st_size > 1000 and (tmp_path / "curves.png").stat().st_size > 1000

"""`lenrl testbed compare`: every method resolves to a valid config with the shared settings; the results
table and plots are written from evaluation summaries."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lenrl.config import load_config
from lenrl.errors import LenrlError
from lenrl.eval.samples import SampleRecord
from lenrl.eval.summary import summarize
from lenrl.testbed.compare import METHODS, check_settings, compare_main, parse_args, settings_record, train_overrides
from lenrl.testbed.report import write_results


def test_every_method_gets_the_same_settings(tmp_path):
    args = parse_args(["--steps", "7", "--n", "4", "--cap", "64", "--max-tokens", "200"])
    for m in METHODS.values():
        cfg = load_config(m.algo, None, train_overrides(args, m, tmp_path / m.name))
        assert cfg.model.name == cfg.data.source == "testbed:default" and cfg.model.thinking
        assert (cfg.train.steps, cfg.rollout.n, cfg.train.seed) == (7, 4, 0)
        # the truncation-penalty methods get --cap; PALU's L_max and the curriculum's first budget are their own
        own = {"dler": 64, "da_dler": 64, "palu": 160, "curriculum": 160, "curriculum_band": 160}
        assert cfg.rollout.max_tokens == own.get(m.name, 200)
        assert cfg.train.resume == "auto" and cfg.output.checkpoint_every == 5
        assert cfg.output.name == m.name
    assert [r.name for r in load_config("grpo", None, train_overrides(args, METHODS["kimi"], tmp_path)).rewards] == [
        "math_correct",
        "kimi",
    ]


def _eval(out: Path, label: str, length: int, aes: float | None, targets: list[int] | None = None) -> None:
    recs = [
        [SampleRecord(f"testbed-test-0-{i:06d}:3+4-2", 0, 0, 10, length, 0, "stop", False, 1.0, i % 4 != 0, "5", "")]
        for i in range(8)
    ]
    if targets is not None:  # an evaluation with target lengths in the prompt
        recs = [
            [replace(q[0], response_len=length + i, target=n)]
            for i, (q, n) in enumerate(zip(recs, targets, strict=True))
        ]
    s = {"benchmark": "testbed:default", "label": label, "settings": {"n": 1}, **summarize(recs, [])}
    if aes is not None:
        s["aes"] = {"value": aes}
    d = out / "evals" / ("length_control/" if targets else "") / label / "testbed:default"
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


def test_l1_trains_and_is_evaluated_with_target_lengths_sized_for_the_testbed(tmp_path):
    args = parse_args([])
    cfg = load_config("l1", None, train_overrides(args, METHODS["l1"], tmp_path / "l1"))
    assert cfg.data.target_len == [24, 96] == list(METHODS["l1"].target_len)
    assert "{target_len}" in cfg.data.instruction
    [l1] = [r for r in cfg.rewards if r.name == "l1_exact"]
    assert l1.params["alpha"] == 5e-3  # the preset's 3e-4 scaled to testbed lengths (compare.py)
    assert all(m.target_len is None for m in METHODS.values() if m.name != "l1")


def test_results_report_l1_length_control_before_and_after(tmp_path):
    _eval(tmp_path, "start", 68, None)
    _eval(tmp_path, "l1", 40, 0.2)
    targets = [24, 40, 56, 72, 88, 24, 40, 56]
    _eval(tmp_path, "start", 68, None, targets=targets)  # lengths 68..75, whatever the target
    _eval(tmp_path, "l1", 40, None, targets=[40 + i for i in range(8)])  # lengths 40..47, each on its target
    text = write_results(tmp_path, ["start", "l1"], METHODS).read_text()
    # start: |len - N| = |68 + i - N_i| = 44, 29, 14, 1, 16, 49, 34, 19 -> 206 / 8 = 25.75
    start_lc = json.loads(next((tmp_path / "evals/length_control/start").glob("*/summary.json")).read_text())
    assert start_lc["length_control"]["mean_abs_error"] == 25.75
    assert "| start (before training) | U{24..96} | 25.8 |" in text
    assert "| l1 (after training) | U{24..96} | 0.0 | 0.00 | 1.000 | 1.00 | 0.00 |" in text
    assert text.index("| l1 | 0.750 | 40.0 |") < text.index("length control with target lengths")


def _settings(argv: list[str]) -> dict:
    args = parse_args(argv)
    return settings_record(args, [m.strip() for m in args.methods.split(",")])


def test_compare_settings_are_stored_and_a_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "cmp"
    first = _settings(["--out", str(out), "--methods", "grpo,dler", "--steps", "5"])
    check_settings(out, first)
    stored = json.loads((out / "settings.json").read_text())
    assert stored == first and stored["testbed"] == "testbed:default" and stored["steps"] == 5
    assert stored["methods"]["dler"] == {"algo": "dler", "overrides": [], "capped": True, "target_len": None}
    check_settings(out, first)  # the same settings resume
    # adding a method is allowed, and it joins the stored settings; a subset resumes too
    check_settings(out, _settings(["--methods", "grpo,l1", "--steps", "5"]))
    assert list(json.loads((out / "settings.json").read_text())["methods"]) == ["grpo", "dler", "l1"]
    check_settings(out, _settings(["--methods", "dler", "--steps", "5"]))
    with pytest.raises(LenrlError, match=r"other settings \(eval_n, steps\)"):
        check_settings(out, _settings(["--methods", "grpo", "--steps", "6", "--eval-n", "2"]))
    changed = {**first, "methods": {**first["methods"], "dler": {**first["methods"]["dler"], "capped": False}}}
    with pytest.raises(LenrlError, match=r"other settings \(methods.dler\)"):
        check_settings(out, changed)
    # the command refuses in one line before building, training or evaluating anything
    code = compare_main(["--out", str(out), "--methods", "grpo", "--steps", "5", "--lr", "3e-4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds a comparison with other settings (lr)" in err and "\n" not in err
    assert not (out / "evals").exists() and not (out / "runs").exists()

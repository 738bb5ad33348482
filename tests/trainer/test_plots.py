"""Training-curve pictures from metrics.jsonl (`lenrl plot`, and the one every run writes at its end)."""

from __future__ import annotations

import json

import pytest

from lenrl.cli import main
from lenrl.errors import LenrlError
from lenrl.trainer.plots import OUT_NAME, PANELS, read_metrics, write_run_plots

PNG = b"\x89PNG\r\n\x1a\n"


def _run(path, steps, *, kl=True):
    path.mkdir(parents=True)
    rows = []
    for s in range(1, steps + 1):
        r = {"step": s, "reward/mean": s / 10, "reward/accuracy": 0.5, "len/mean": 100 - s, "len/p90": 120 - s}
        r.update({"len/truncated_frac": 0.0, "len/budget_mean": 80, "actor/entropy": float("nan"), "train/lr": 1e-4})
        if kl:
            r["actor/kl_ref"] = 0.01 * s
        rows.append(json.dumps(r))
    (path / "metrics.jsonl").write_text("\n".join(rows) + '\n{"step": 9, "rew')  # a run killed mid-line
    return path


def test_every_panel_metric_is_one_the_loop_logs():
    from lenrl.trainer.metrics import LEARNER_KEYS

    logged = {"reward/mean", "reward/accuracy", "len/mean", "len/p90", "len/truncated_frac", "len/budget_mean"}
    logged |= set(LEARNER_KEYS) | {"train/lr"}
    assert {k for _, keys in PANELS for k in keys} <= logged


def test_run_plot_and_overlay(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 5), _run(tmp_path / "b", 3, kl=False)
    assert [r["step"] for r in read_metrics(a)] == [1, 2, 3, 4, 5]  # the partial line is skipped
    out = write_run_plots(a)
    assert out == a / OUT_NAME and out.read_bytes().startswith(PNG)
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").read_bytes().startswith(PNG)
    assert main(["plot", str(a), str(b)]) == 2
    assert "several runs need --out FILE" in capsys.readouterr().err
    with pytest.raises(LenrlError, match="no metrics.jsonl"):
        read_metrics(tmp_path)

"""Per-step metrics by hand on a small batch, and the logger's three outputs."""

import io
import json
import math

import pytest
import torch

from lenrl.records import GenerationStats, Rollout, RolloutBatch
from lenrl.trainer.learner import LearnerStats
from lenrl.trainer.metrics import LEARNER_KEYS, MetricsLogger, generation_metrics, learner_metrics, rollout_metrics


def _batch() -> RolloutBatch:
    # lengths 1, 2, 3, 10 (the last cut at its budget of 10); thinking spans 0, 1, 2, 5; budgets 10, 10, 6, 10
    spec = [(1, 0, 10, "stop"), (2, 1, 10, "stop"), (3, 2, 6, "stop"), (10, 5, 10, "length")]
    return RolloutBatch.from_rollouts(
        [Rollout(i // 2, [7], [1] * t, [-0.5] * t, why, b, th, "", 0) for i, (t, th, b, why) in enumerate(spec)]
    )


def test_rollout_metrics_by_hand():
    m = rollout_metrics(_batch(), torch.tensor([1.0, 0.0, 0.5, 0.0]), torch.tensor([True, False, True, False]))
    assert m == {
        "reward/mean": 0.375,  # 1.5 / 4
        "reward/accuracy": 0.5,
        "len/mean": 4.0,  # 16 / 4
        "len/p90": pytest.approx(7.9),  # sorted [1, 2, 3, 10], position 0.9 * 3 = 2.7: 3 + 0.7 * (10 - 3)
        "len/max": 10.0,
        "len/truncated_frac": 0.25,
        "len/correct_mean": 2.0,  # (1 + 3) / 2
        "len/think_mean": 2.0,  # 8 / 4
        "len/budget_mean": 9.0,  # 36 / 4
    }
    none_right = rollout_metrics(_batch(), torch.zeros(4), torch.zeros(4, dtype=torch.bool))
    assert math.isnan(none_right["len/correct_mean"]) and none_right["reward/accuracy"] == 0.0


def test_learner_metrics_map_every_field_and_are_nan_without_an_update():
    s = LearnerStats(
        loss=0.5, kl_ref=0.01, entropy=2.0, clipfrac=0.1, grad_norm=3.0, logp_gap=1e-6, tokens=9, seconds=4.0,
        nonfinite_skipped=1, fwd_tokens=20, pad_frac=0.25, peak_rss_gib=1.5,
    )  # fmt: skip
    assert learner_metrics(s) == {
        "actor/loss": 0.5,
        "actor/kl_ref": 0.01,
        "actor/entropy": 2.0,
        "actor/clipfrac": 0.1,
        "actor/grad_norm": 3.0,
        "sync/logp_abs_gap": 1e-6,
        "time/update_s": 4.0,
        "actor/nonfinite_skipped": 1,
        "time/learner_tokens_per_s": 5.0,  # 20 forward positions in 4 s
        "actor/pad_frac": 0.25,
        "mem/learner_peak_gib": 1.5,
    }
    skipped = learner_metrics(None)
    assert list(skipped) == list(LEARNER_KEYS) and all(math.isnan(v) for v in skipped.values())


def test_generation_metrics():
    assert generation_metrics(GenerationStats(seconds=2.0, tokens=100, peak_rss_gib=3.0)) == {
        "time/generate_s": 2.0,
        "time/gen_tokens_per_s": 50.0,
        "mem/rollout_peak_gib": 3.0,
    }
    assert generation_metrics(GenerationStats(seconds=0.0, tokens=0))["time/gen_tokens_per_s"] == 0.0


def test_logger_writes_one_json_row_per_step_and_a_console_line_even_without_an_update(tmp_path):
    out = io.StringIO()
    logger = MetricsLogger(tmp_path, 2, tensorboard=False, out=out)
    base = {
        **rollout_metrics(_batch(), torch.tensor([1.0, 0.0, 0.5, 0.0]), torch.tensor([True, False, True, False])),
        **generation_metrics(GenerationStats(seconds=2.0, tokens=100)),
        "time/step_s": 3.0,
    }
    s = LearnerStats(0.5, 0.01, 2.0, 0.1, 3.0, 1e-6, 9, 4.0)
    logger.log(1, {**base, **learner_metrics(s)})
    logger.log(2, {**base, **learner_metrics(None)})
    logger.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["actor/loss"] == 0.5 and math.isnan(rows[1]["actor/loss"])
    assert rows[0]["len/mean"] == 4.0 and rows[0]["reward/mean"] == 0.375
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step 1/2 | reward 0.375 acc 0.500 | len 4.0 p90 8 trunc 0.25 | loss +5.00e-01")
    assert "50 tok/s" in lines[0] and "loss +nan" in lines[1] and lines[1].endswith("ETA 0m00s")


def test_resuming_refuses_a_metrics_file_shorter_than_its_checkpoint(tmp_path):
    from lenrl.errors import LenrlError

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(LenrlError, match=r"metrics.jsonl: 1 lines, but the checkpoint of step 2 was taken after 2"):
        MetricsLogger(tmp_path, 4, tensorboard=False, resume_at=(2, 2))

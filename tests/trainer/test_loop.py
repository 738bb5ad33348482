"""The RL loop with the real sampler, advantage registry, run directory and logger around a fake engine,
fake rewards and fake learners (no model: tests/test_train_e2e.py runs the real ones)."""

import json
import math
from pathlib import Path

import pytest
import torch

from lenrl.algos import QUESTION_BUDGETS
from lenrl.config import Config, load_config
from lenrl.data.stream import PromptStream
from lenrl.records import Problem, Prompt
from lenrl.trainer import checkpoint
from lenrl.trainer.batch import TrainBatch
from lenrl.trainer.learner import LearnerStats
from lenrl.trainer.loop import Parts, train
from lenrl.trainer.question_budgets import STATE_FILE, QuestionBudgets
from lenrl.trainer.rundir import RunDir
from lenrl.trainer.sampling import BatchSampler
from tests.trainer.test_sampling import FakeEngines, FakeRewards


class PushEngines(FakeEngines):
    """Response i of a group has i + 1 tokens; records every weight push."""

    def __init__(self):
        super().__init__()
        self.pushed: list[tuple[str, int]] = []

    def push_weights(self, weights, version):
        self.pushed.append((weights, version))


class FakeLearners:
    """Records each update's batch and mini-batch count; weights are a label naming the update count."""

    def __init__(self):
        self.batches: list[TrainBatch] = []
        self.mini_batches: list[int] = []
        self.saved: list[str] = []
        self.lrs: list[float | None] = []

    def update(self, batch: TrainBatch, mini_batches: int, lr: float | None = None) -> LearnerStats:
        self.batches.append(batch)
        self.mini_batches.append(mini_batches)
        self.lrs.append(lr)
        return LearnerStats(0.25, 0.0, 1.5, 0.0, 2.0, 1e-6, batch.num_tokens, 0.1)

    def weights(self) -> str:
        return f"after update {len(self.batches)}"

    def save(self, path: str, tokenizer_src: str) -> str:
        """The learner's half of a checkpoint: here, how many updates it has had."""
        Path(path).mkdir(exist_ok=True)
        (Path(path) / "updates.txt").write_text(str(len(self.batches)))
        self.saved.append(path)
        return path

    def load(self, path: str) -> None:
        self.batches = [None] * int((Path(path) / "updates.txt").read_text())  # type: ignore[list-item]


def _run(cfg: Config, answers: list[str], budgets: QuestionBudgets | None = None):
    prompts = [Prompt(Problem(f"p{i}", "q", a), "text", [7, i]) for i, a in enumerate(answers)]
    engines, learners = PushEngines(), FakeLearners()
    stream = PromptStream(prompts, seed=0)
    budgets = budgets or QuestionBudgets(QUESTION_BUDGETS.get("none"), "none", cfg.rollout.max_tokens)
    sampler = BatchSampler(cfg, stream, engines, FakeRewards(), budgets=budgets)
    with RunDir(cfg) as run:
        result = train(cfg, run, Parts(engines, stream, budgets, sampler, learners), pad_id=2, model_path="unused")
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return result, run, engines, learners, rows


def _overrides(tmp_path, **kw):
    base = {
        "rollout.n": 3,
        "rollout.max_tokens": 8,
        "train.steps": 2,
        "train.prompts_per_step": 2,
        "train.micro_batch_size": 3,
        "output.dir": tmp_path,
        "output.name": "run",
        "output.tensorboard": "false",
    }
    return [f"{k}={v}" for k, v in {**base, **kw}.items()]


def test_grpo_palu_loop_updates_pushes_logs_and_checkpoints_with_budgets(tmp_path, capsys):
    cfg = load_config("palu", None, _overrides(tmp_path))
    budgets = QuestionBudgets(QUESTION_BUDGETS.bind("palu", {}), "palu", 8)
    result, run, engines, learners, rows = _run(cfg, ["mixed", "mixed"], budgets)

    # the advantage is GRPO's over each group's scores [1, 0, 0]: mean 1/3, unbiased std sqrt(1/3)
    a, b = (2 / 3) / (1 / 3) ** 0.5, -(1 / 3) / (1 / 3) ** 0.5
    for step, batch in enumerate(learners.batches):  # group ids: 0, 1 at step 1, then 2, 3
        torch.testing.assert_close(batch.adv_B, torch.tensor([a, b, b] * 2), atol=1e-5, rtol=0)
        assert batch.group_id_B.tolist() == [2 * step] * 3 + [2 * step + 1] * 3
        assert batch.response_len_B.tolist() == [1, 2, 3] * 2 and batch.num_tokens == 12
        assert batch.correct_B.tolist() == [True, False, False] * 2
    assert learners.mini_batches == [1, 1]
    assert engines.pushed == [("after update 1", 1), ("after update 2", 2)]

    assert [r["step"] for r in rows] == [1, 2] and [r["sync/weight_version"] for r in rows] == [1, 2]
    for r in rows:  # length beside reward, the update's statistics, the sampler's counters
        assert r["reward/mean"] == pytest.approx(1 / 3) and r["reward/accuracy"] == pytest.approx(1 / 3)
        assert r["len/mean"] == 2.0 and r["len/correct_mean"] == 1.0 and r["len/budget_mean"] == 8.0
        assert r["actor/loss"] == 0.25 and r["actor/grad_norm"] == 2.0 and r["sample/update_skipped"] == 0.0
        assert r["sample/draws"] == 1 and r["budget/questions_seen"] == 2.0
    assert "step 2/2" in capsys.readouterr().out

    assert run.committed and result.steps == 2 and result.weight_version == 2
    assert result.checkpoint == str(run.path / "checkpoint") and checkpoint.latest(run.path) == run.path / "checkpoint"
    assert learners.saved == [str(run.path / ".checkpoint.tmp")]  # assembled beside, then renamed into place
    assert not (run.path / "checkpoints").exists()  # output.checkpoint_every=0: the final one only
    # pass rate 1/3 < 0.8 on each visit: both questions stay at L_max; the state is saved twice
    for where in (run.path, Path(result.checkpoint)):
        assert json.loads((where / STATE_FILE).read_text())["budgets"] == {"p0": 8, "p1": 8}


def test_dler_loop_trains_on_kept_groups_only_and_skips_a_step_with_none(tmp_path):
    """DLER's batch whitening when dynamic sampling runs out of draws: a filtered-out all-wrong group carries
    exactly zero weight and takes no part in the batch statistics; a step that kept nothing updates nothing."""
    cfg = load_config("dler", None, _overrides(tmp_path, **{"algo.filter_max_draws": 1, "algo.kl_coef": 0.0}))
    # PromptStream(seed=0) draws p3, p1 at step 1 (group ids 0, 1) and p0, p2 at step 2 (group ids 2, 3)
    result, _, engines, learners, rows = _run(cfg, ["all", "all", "all", "mixed"])

    batch = learners.batches[0]
    # the filtered-out group 1 (all wrong) has no row with a weight: no advantage, no loss-mask token
    weighted_B = (batch.adv_B != 0) | batch.response_mask_BT.any(1)
    assert not weighted_B[batch.group_id_B == 1].any()
    assert weighted_B[batch.group_id_B == 0].all()
    # the kept group alone, by hand: rewards [1, 0, 0] with token weights 1, 2, 3; centred [2/3, -1/3, -1/3];
    # batch mean -1/6, variance 1/6 (tests/trainer/test_sampling.py works it through)
    kept_adv = (torch.tensor([2 / 3, -1 / 3, -1 / 3]) + 1 / 6) / (1 / 6) ** 0.5
    torch.testing.assert_close(batch.adv_B[batch.group_id_B == 0], kept_adv)
    assert len(learners.batches) == 1 and learners.mini_batches == [1]

    assert engines.pushed == [("after update 1", 1)] and result.weight_version == 1
    assert [r["sync/weight_version"] for r in rows] == [1, 1]
    assert [r["sample/update_skipped"] for r in rows] == [0.0, 1.0]
    assert [r["sample/short_groups"] for r in rows] == [1, 2]
    assert rows[0]["actor/loss"] == 0.25 and math.isnan(rows[1]["actor/loss"])
    assert rows[1]["len/mean"] == 2.0 and rows[1]["reward/accuracy"] == 0.0  # what was drawn is still logged


def test_wandb_offline_logs_every_step_without_a_network(tmp_path, monkeypatch):
    """output.wandb_project with wandb_mode=offline: the run's W&B record log is written under <run>/wandb
    (for `wandb sync`) with the metrics of metrics.jsonl."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    over = {"output.wandb_project": "lenrl-test", "output.wandb_mode": "offline", "algo.kl_coef": 0.0}
    cfg = load_config("grpo", None, _overrides(tmp_path, **over))
    _, run, _, _, rows = _run(cfg, ["mixed", "mixed"])
    [offline] = (run.path / "wandb").glob("offline-run-*")
    [history] = offline.glob("*.wandb")
    assert len(rows) == 2
    data = history.read_bytes()  # W&B's record log: metric names are stored as plain strings
    assert all(key.encode() in data for key in ("len/mean", "reward/accuracy", "actor/loss", "train/lr"))


class VersionedEngines(PushEngines):
    """Rollouts carry the version of the weights last pushed; every generate and push goes into `events`."""

    def __init__(self, events):
        super().__init__()
        self.events, self.version = events, 0

    def generate(self, requests, step):
        from dataclasses import replace

        self.events.append(("generate", step, self.version))
        out, stats = super().generate(requests, step)
        return [replace(r, weight_version=self.version) for r in out], stats

    def push_weights(self, weights, version):
        super().push_weights(weights, version)
        self.events.append(("push", version))
        self.version = version


class EventLearners(FakeLearners):
    def __init__(self, events):
        super().__init__()
        self.events = events

    def update(self, batch, mini_batches, lr=None):
        self.events.append(("update", len(self.batches) + 1))
        return super().update(batch, mini_batches, lr)


def _run_async(tmp_path, async_steps, **kw):
    cfg = load_config("grpo", None, _overrides(tmp_path, **{"train.steps": 4, "train.async_steps": async_steps, **kw}))
    events = []
    prompts = [Prompt(Problem(f"p{i}", "q", "mixed"), "text", [7, i]) for i in range(4)]
    engines, learners = VersionedEngines(events), EventLearners(events)
    stream = PromptStream(prompts, seed=0)
    budgets = QuestionBudgets(QUESTION_BUDGETS.get("none"), "none", cfg.rollout.max_tokens)
    sampler = BatchSampler(cfg, stream, engines, FakeRewards(), budgets=budgets)
    with RunDir(cfg) as run:
        train(cfg, run, Parts(engines, stream, budgets, sampler, learners), pad_id=2, model_path="unused")
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return events, learners, rows, run


def test_async_steps_sample_the_next_batch_one_version_behind_and_checkpoints_wait(tmp_path):
    events, learners, rows, _ = _run_async(tmp_path / "a", 1, **{"output.checkpoint_every": 2})
    gens = [e for e in events if e[0] == "generate"]
    # step 1 sampled with v0; step 2 prefetched during update 1 (still v0); step 2 is a checkpoint step, so
    # step 3 is sampled after push 2 (v2); step 4 is prefetched during update 3, before push 3 (v2)
    assert gens == [("generate", 1, 0), ("generate", 2, 0), ("generate", 3, 2), ("generate", 4, 2)]
    assert events.index(("generate", 2, 0)) < events.index(("push", 1))  # the push waits for the prefetch
    assert [r["sync/staleness"] for r in rows] == [0.0, 1.0, 0.0, 1.0]
    assert math.isnan(rows[1]["time/prefetch_wait_s"]) and rows[0]["time/prefetch_wait_s"] >= 0
    # the same prompts, groups and seeds as a synchronous run: only the weights' version differs
    _, sync_learners, sync_rows, _ = _run_async(tmp_path / "s", 0)
    for a, s in zip(learners.batches, sync_learners.batches, strict=True):
        assert a.group_id_B.tolist() == s.group_id_B.tolist() and torch.equal(a.input_ids_BL, s.input_ids_BL)
    assert all(r["sync/staleness"] == 0.0 for r in sync_rows)


def test_an_interrupted_async_run_checkpoints_the_data_position_before_the_prefetch(tmp_path, monkeypatch):
    """SIGTERM during step 2's update lands after step 2, when step 3's batch (groups 4, 5) has already been
    drawn: the checkpoint records the position before it, so a resume draws step 3 again."""
    import os
    import signal

    from lenrl.errors import Interrupted, interrupt_on_signals

    def update(self, batch, mini_batches, lr=None):
        if len(self.batches) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        self.events.append(("update", len(self.batches) + 1))
        return FakeLearners.update(self, batch, mini_batches, lr)

    monkeypatch.setattr(EventLearners, "update", update)
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    interrupt_on_signals()
    try:
        with pytest.raises(Interrupted):
            _run_async(tmp_path, 1)
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    state = checkpoint.read_state(checkpoint.latest(tmp_path / "run"))
    assert state.step == 2 and state.next_group == 4

"""Checkpoints and exact resume in the loop, around fake engines, rewards and learners (the loop, sampler,
prompt stream, budgets, run directory, logger and checkpoint files are the real ones). The same through
Ray and vLLM, with SIGKILL: tests/test_resume_e2e.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch

from lenrl import storage
from lenrl.algos import QUESTION_BUDGETS
from lenrl.config import load_config
from lenrl.data.stream import PromptStream
from lenrl.errors import Interrupted, LenrlError, RunFailed, WorkerDied, interrupt_on_signals
from lenrl.records import Problem, Prompt
from lenrl.reward_runner import ScoredBatch
from lenrl.trainer import checkpoint
from lenrl.trainer.loop import Parts, train
from lenrl.trainer.question_budgets import QuestionBudgets
from lenrl.trainer.rundir import RunDir
from lenrl.trainer.sampling import BatchSampler
from tests.trainer.test_loop import FakeLearners, PushEngines, _overrides
from tests.trainer.test_sampling import FakeRewards

# PALU over 5 questions, 2 per step: epochs wrap mid-step, budgets shrink on the all-correct ("right") visits.
ANSWERS = ["mixed", "right", "mixed", "all", "right"]


class Rewards(FakeRewards):
    """FakeRewards, and every sample of a question whose answer is "right" is correct."""

    def score(self, x):
        out = super().score(x)
        right = torch.tensor([a == "right" for a in x.answers])
        return ScoredBatch((out.correct_B | right).float(), out.correct_B | right, out.metrics)


class Crash(RuntimeError):
    pass


class CrashingEngines(PushEngines):
    """Fails generating step `at` (a dead driver, as far as the run is concerned), or raises `error` there."""

    def __init__(self, at: int | None = None, error: BaseException | None = None):
        super().__init__()
        self.at, self.error = at, error

    def generate(self, requests, step):
        if step == self.at:
            raise self.error or Crash(f"engine died at step {step}")
        return super().generate(requests, step)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _deterministic(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith(("time/", "mem/"))}


def _train(tmp_path, *, engines=None, learners=None, algo="palu", **kw):
    cfg = load_config(algo, None, _overrides(tmp_path, **{"train.steps": 6, **kw}))
    prompts = [Prompt(Problem(f"p{i}", "q", a), "text", [7, i]) for i, a in enumerate(ANSWERS)]
    spec = cfg.rollout.question_budget
    budgets = QuestionBudgets(QUESTION_BUDGETS.bind(spec.name, spec.params), spec.name, cfg.rollout.max_tokens)
    engines, learners = engines or PushEngines(), learners or FakeLearners()
    stream = PromptStream(prompts, seed=0)
    sampler = BatchSampler(cfg, stream, engines, Rewards(), budgets=budgets)
    with RunDir(cfg) as run:
        result = train(cfg, run, Parts(engines, stream, budgets, sampler, learners), pad_id=2, model_path="x")
    return result, learners


def test_crash_then_resume_matches_the_uninterrupted_run(tmp_path):
    full, full_learners = _train(tmp_path / "a", **{"output.checkpoint_every": 2, "output.keep_last": 5})
    expected = _rows(Path(full.run_dir))
    run = tmp_path / "b" / "run"
    with pytest.raises(Crash):  # dies drawing step 6: step 5 was logged, the newest checkpoint is step 4
        _train(tmp_path / "b", engines=CrashingEngines(at=6), **{"output.checkpoint_every": 2})
    assert len(_rows(run)) == 5
    assert [s for s, _ in checkpoint.complete_checkpoints(run)] == [2, 4]  # keep_last=2 pruned nothing yet

    resumed, learners = _train(tmp_path / "b", **{"output.checkpoint_every": 2, "train.resume": "auto"})
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # step 5's first try was dropped, then redone
    assert [_deterministic(r) for r in rows] == [_deterministic(r) for r in expected]
    # the resumed learner got exactly the batches the uninterrupted one got at steps 5 and 6
    for mine, theirs in zip(learners.batches[4:], full_learners.batches[4:], strict=True):
        assert mine.group_id_B.tolist() == theirs.group_id_B.tolist()
        assert (
            mine.adv_B.tolist() == theirs.adv_B.tolist()
            and mine.response_len_B.tolist() == theirs.response_len_B.tolist()
        )
    assert resumed.weight_version == full.weight_version == 6
    assert [s for s, _ in checkpoint.complete_checkpoints(run)] == [4, 6, 6]  # step_4, step_6 and the final one
    assert rows[-1]["budget/question_mean"] < 8  # PALU's budgets really moved, and were carried over


def test_sigterm_during_sampling_checkpoints_the_last_finished_step(tmp_path):
    engines = CrashingEngines(at=3, error=Interrupted(signal.SIGTERM))
    with pytest.raises(Interrupted):
        _train(tmp_path, engines=engines)
    run = tmp_path / "run"
    assert len(_rows(run)) == 2 and checkpoint.latest(run) == checkpoint.periodic_dir(run, 2)
    state = checkpoint.read_state(checkpoint.latest(run))
    assert state.step == 2 and state.weight_version == 2 and state.metrics_lines == 2 and state.next_group == 4


def test_a_signal_during_the_update_is_held_until_the_step_is_logged_and_saved(tmp_path):
    class SignalledLearners(FakeLearners):
        def update(self, batch, mini_batches, lr=None):
            if len(self.batches) == 1:  # step 2's update
                os.kill(os.getpid(), signal.SIGTERM)
            return super().update(batch, mini_batches, lr)

    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    interrupt_on_signals()
    try:
        with pytest.raises(Interrupted):
            _train(tmp_path, learners=SignalledLearners())
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    run = tmp_path / "run"
    assert [r["step"] for r in _rows(run)] == [1, 2]  # step 2 finished whole
    assert checkpoint.read_state(checkpoint.latest(run)).step == 2


def test_an_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path):
    class FailingSave(FakeLearners):
        def save(self, path, tokenizer_src):
            super().save(path, tokenizer_src)
            if "step_000004" in path:
                raise Crash("disk full")
            return path

    with pytest.raises(Crash):
        _train(tmp_path, learners=FailingSave(), **{"output.checkpoint_every": 2})
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000002"]  # no half-written step_4
    assert checkpoint.latest(run) == checkpoint.periodic_dir(run, 2)
    resumed, _ = _train(tmp_path, **{"output.checkpoint_every": 2, "train.resume": str(run)})
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4, 5, 6] and resumed.weight_version == 6


def test_resume_refuses_a_changed_config_and_starts_fresh_when_nothing_exists(tmp_path):
    fresh, _ = _train(tmp_path, **{"train.resume": "auto", "train.steps": 2})  # nothing to continue: a new run
    assert len(_rows(Path(fresh.run_dir))) == 2
    with pytest.raises(LenrlError, match=r"train.resume: train.lr is 0.5 but the run being resumed used 0.0001"):
        load = load_config("palu", None, _overrides(tmp_path, **{"train.resume": "auto", "train.lr": 0.5}))
        RunDir(load)
    extended, _ = _train(tmp_path, **{"train.resume": "auto", "train.steps": 4})  # more steps: allowed
    assert [r["step"] for r in _rows(Path(extended.run_dir))] == [1, 2, 3, 4]
    for bad, msg in [
        ({"train.resume": "auto", "output.name": "null"}, "train.resume=auto needs output.name"),
        ({"train.resume": str(tmp_path / "nope")}, "is not a run directory"),
        ({"train.resume": str(tmp_path)}, "holds no complete checkpoint"),
        ({}, "already exists (continue it: --resume)"),
    ]:
        with pytest.raises(LenrlError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            RunDir(load_config("palu", None, _overrides(tmp_path, **bad)))


def test_lr_schedule_reaches_the_learners(tmp_path):
    _, learners = _train(
        tmp_path, algo="grpo", **{"train.lr_schedule": "linear", "train.warmup_steps": 2, "train.min_lr_ratio": 0.5}
    )
    # warm-up 1/2, 2/2; then linear from 1 to 0.5 over the remaining 4 steps: p = 1/4, 2/4, 3/4, 1
    expected = [0.5, 1.0, 0.875, 0.75, 0.625, 0.5]
    assert learners.lrs == pytest.approx([1e-4 * f for f in expected])
    assert [r["train/lr"] for r in _rows(tmp_path / "run")] == pytest.approx([1e-4 * f for f in expected])


def test_nonfinite_updates_are_skipped_then_stop_the_run_naming_the_last_checkpoint(tmp_path):
    class NonFinite(FakeLearners):
        def update(self, batch, mini_batches, lr=None):
            stats = super().update(batch, mini_batches, lr)
            return dataclasses.replace(stats, nonfinite_skipped=int(len(self.batches) >= 2))

    run = tmp_path / "run"
    with pytest.raises(RunFailed, match=r"3 updates in a row had a non-finite loss or gradient \(step 4\); continue"):
        _train(tmp_path, learners=NonFinite(), **{"output.checkpoint_every": 2})
    assert [r["actor/nonfinite_skipped"] for r in _rows(run)] == [0, 1, 1]  # step 4 stopped before its log
    assert checkpoint.read_state(checkpoint.latest(run)).nonfinite_streak == 1  # the streak resumes too
    ok, _ = _train(tmp_path / "again", **{"train.max_nonfinite_updates": 1})  # finite updates never stop a run
    assert ok.steps == 6


def test_a_dead_learner_fails_the_run_naming_the_last_good_checkpoint(tmp_path):
    class Dying(FakeLearners):
        def update(self, batch, mini_batches, lr=None):
            if len(self.batches) == 2:
                raise WorkerDied("a learner died (ActorDiedError)")
            return super().update(batch, mini_batches, lr)

    with pytest.raises(RunFailed) as e:
        _train(tmp_path, learners=Dying(), **{"output.checkpoint_every": 2})
    ckpt = checkpoint.periodic_dir(tmp_path / "run", 2)
    assert str(e.value) == f"a learner died (ActorDiedError) after step 2; continue from {ckpt} with --resume"


def test_output_dir_under_a_ray_job_resolves_to_the_submission_directory(tmp_path, monkeypatch):
    """`ray job submit --working-dir .` runs the driver in a temporary copy of the project: a relative
    output.dir goes to the submission directory ($LENRL_SUBMIT_DIR) or is refused, never into the copy."""
    from lenrl.trainer.rundir import SUBMIT_DIR_ENV, output_root

    copy = tmp_path / "session" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123abcd"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.delenv(SUBMIT_DIR_ENV, raising=False)
    assert output_root(str(tmp_path / "abs")) == tmp_path / "abs"
    with pytest.raises(LenrlError, match=r"output.dir 'runs' is relative, but this Ray job runs in a temporary copy"):
        output_root("runs")
    monkeypatch.setenv(SUBMIT_DIR_ENV, str(tmp_path / "project"))
    with pytest.raises(LenrlError, match="is relative"):  # a submission directory this machine does not reach
        output_root("runs")
    (tmp_path / "project").mkdir()
    assert output_root("runs") == tmp_path / "project" / "runs"
    monkeypatch.chdir(tmp_path)  # an ordinary run: relative to where it was started
    assert output_root("runs") == tmp_path / "runs"


class StorageLearners(FakeLearners):
    """FakeLearners writing their half through lenrl.storage, as `Learner.save` does for a URI."""

    def save(self, path: str, tokenizer_src: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "updates.txt").write_text(str(len(self.batches)))
            storage.upload(Path(tmp), path)
        self.saved.append(path)
        return path

    def load(self, path: str) -> None:
        self.batches = [None] * int(storage.read_text(storage.join(path, "updates.txt")))  # type: ignore[list-item]


def test_a_run_at_a_uri_checkpoints_there_and_resumes_on_a_fresh_machine(tmp_path, monkeypatch):
    """output.dir as a URI (file:// through fsspec, with an object store's rules: no directory rename, so a
    marker uploaded last): a crashed run left its checkpoints and metrics at the URI; a driver that has
    nothing on its disk (the staging copy deleted) resumes from there exactly."""
    monkeypatch.setenv("LENRL_CACHE", str(tmp_path / "cache"))  # where the driver's staging copy goes
    full, _ = _train(tmp_path / "local", **{"output.checkpoint_every": 2, "output.keep_last": 5})
    uri, remote = f"file://{tmp_path}/bucket", tmp_path / "bucket" / "run"
    at_uri = {"output.dir": uri, "output.checkpoint_every": 2}
    with pytest.raises(Crash):
        _train(tmp_path, engines=CrashingEngines(at=6), learners=StorageLearners(), **at_uri)
    assert len(_rows(remote)) == 5  # mirrored as the run failed
    assert [s for s, _ in checkpoint.complete_checkpoints(f"{uri}/run")] == [2, 4]
    assert checkpoint.latest(f"{uri}/run") == f"{uri}/run/checkpoints/step_000004"
    assert list((tmp_path / "cache" / "staging").iterdir()) == []  # mirrored, so the local copy was dropped
    shutil.rmtree(tmp_path / "cache")  # a fresh machine

    resumed, _ = _train(tmp_path, learners=StorageLearners(), **at_uri, **{"train.resume": "auto"})
    assert resumed.run_dir == f"{uri}/run" and resumed.weight_version == 6
    assert [_deterministic(r) for r in _rows(remote)] == [_deterministic(r) for r in _rows(Path(full.run_dir))]
    assert [s for s, _ in checkpoint.complete_checkpoints(f"{uri}/run")] == [4, 6, 6]
    assert (remote / "config.yaml").is_file() and (remote / "question_budgets.json").is_file()
    assert not (remote / "checkpoints" / ".step_000006.tmp").exists()  # no local-style leftovers at the URI


def test_an_interrupted_checkpoint_upload_is_ignored_then_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("LENRL_CACHE", str(tmp_path / "cache"))

    class FailingUpload(StorageLearners):
        def save(self, path, tokenizer_src):
            super().save(path, tokenizer_src)
            if "step_000004" in path:
                raise Crash("connection reset")
            return path

    uri, remote = f"file://{tmp_path}/bucket", tmp_path / "bucket" / "run"
    at_uri = {"output.dir": uri, "output.checkpoint_every": 2}
    with pytest.raises(Crash):
        _train(tmp_path, learners=FailingUpload(), **at_uri)
    step4 = remote / "checkpoints" / "step_000004"
    assert (step4 / "updates.txt").is_file() and not (step4 / checkpoint.MARKER).exists()  # half-uploaded
    assert checkpoint.latest(f"{uri}/run") == f"{uri}/run/checkpoints/step_000002"
    resumed, _ = _train(tmp_path, learners=StorageLearners(), **at_uri, **{"train.resume": f"{uri}/run"})
    assert [r["step"] for r in _rows(remote)] == [1, 2, 3, 4, 5, 6] and resumed.weight_version == 6
    assert sorted(p.name for p in (remote / "checkpoints").iterdir()) == ["step_000004", "step_000006"]
    assert (step4 / checkpoint.MARKER).is_file()

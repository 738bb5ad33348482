"""The RL loop, top to bottom: sample (and filter) -> advantage -> update -> push weights -> log -> checkpoint.

The loop owns the run's state and receives its parts explicitly: the rollout engines, the prompt stream,
the per-question budgets, the learners, and the sampler that draws from the first three. At the end of
every step it takes a snapshot of the driver's state (lenrl/trainer/checkpoint.py: data position, group
counter, budgets, RNG); a checkpoint is that snapshot plus the learners' weights and optimizer, written every
`output.checkpoint_every` steps, at the end, and when SIGTERM/SIGINT stops the run. A resumed run restores
all of it and continues exactly where the checkpoint stood.

Synchronous and on-policy by default: the engines sample with the weights of the previous update, and
the learner's recomputed log-probs of those same tokens are compared with the sampler's every step
(`sync/logp_abs_gap`), which checks that the in-place weight push really reached the engines.
With `train.async_steps: 1` the engines sample the next step's batch while the learner updates on this
one (`prefetch`): that batch comes from weights one version behind the learner's, the learner's ratio is
taken against the sampler's log-probs (the behaviour policy), and `sync/staleness` logs the lag.
A step whose dynamic sampling kept no group has nothing to learn from: it logs what was drawn, with NaN
update statistics, and neither updates nor pushes weights (trainer/sampling.py says why filtered-out groups
are never trained on).

Interruptions land between steps: a signal during sampling stops the step (the learners have not moved,
so the last snapshot is still exact); one during the update, push, log and checkpoint is held until they
finish (`lenrl.errors.deferred_interrupts`). Either way a checkpoint of the last finished step is written
before the run exits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lenrl.algos import ADVANTAGES, AdvantageInput
from lenrl.config import Config
from lenrl.data.stream import PromptStream
from lenrl.errors import RunFailed, WorkerDied, deferred_interrupts
from lenrl.storage import Location
from lenrl.trainer import checkpoint
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.checkpoint import TrainerState
from lenrl.trainer.learner import LearnerStats
from lenrl.trainer.lr_schedule import lr_factor
from lenrl.trainer.metrics import MetricsLogger, WandbRun, learner_metrics
from lenrl.trainer.question_budgets import QuestionBudgets
from lenrl.trainer.rundir import RunDir
from lenrl.trainer.sampling import BatchSampler, SampledBatch

if TYPE_CHECKING:  # the loop only calls their methods; importing them would pull in ray
    from lenrl.workers.groups import LearnerGroup, RolloutGroup


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    checkpoint: str | None
    steps: int
    weight_version: int


@dataclass(frozen=True)
class Parts:
    """What the loop drives; the sampler draws from the engines, prompts and budgets given here."""

    engines: RolloutGroup
    prompts: PromptStream
    budgets: QuestionBudgets
    sampler: BatchSampler
    learners: LearnerGroup
    evaluate: Callable[[int], dict[str, float]] | None = None
    """in-training evaluation of the engines' current weights (lenrl/trainer/evaluation.py); None: off"""


def train(cfg: Config, run: RunDir, parts: Parts, *, pad_id: int, model_path: str) -> RunResult:
    advantage = ADVANTAGES.bind(cfg.algo.advantage.name, cfg.algo.advantage.params)
    start = resume(run.resume_from, parts) if run.resume_from is not None else None
    logger = MetricsLogger(
        run.path,
        cfg.train.steps,
        tensorboard=cfg.output.tensorboard,
        resume_at=None if start is None else (start.step, start.metrics_lines),
        wandb=WandbRun(o.wandb_project, o.wandb_mode, cfg.to_dict()) if (o := cfg.output).wandb_project else None,
    )
    state = start or snapshot(0, 0, logger, parts, cfg.train.lr * lr_factor_at(cfg, 1))
    saved_at = state.step if start is not None else -1  # the step of the newest checkpoint on disk
    ready: SampledBatch | None = None  # train.async_steps: this step's batch, sampled during the last update
    try:
        for step in range(state.step + 1, cfg.train.steps + 1):
            t0 = time.perf_counter()
            batch = ready if ready is not None else parts.sampler.sample(step)
            ready = None

            with deferred_interrupts():
                lr = cfg.train.lr * lr_factor_at(cfg, step)
                version, stats, streak = state.weight_version, None, state.nonfinite_streak
                drawn = sampler_state(parts)  # the data position before the next batch is drawn
                ahead = prefetch(cfg, parts, step)
                if batch.num_groups:
                    stats = update(cfg, batch, advantage, parts.learners, pad_id, lr)
                    streak = check_finite(cfg, stats, step, streak, run)
                ready, wait_s = collect(ahead)  # the engines finish the next batch before the weights change
                version, sync_s = push(parts, stats, version)

                metrics = {
                    **batch.metrics,
                    **learner_metrics(stats),
                    **scheduled_eval(cfg, parts, step),
                    **sync_metrics(batch, state.weight_version, wait_s, sync_s),
                    "sample/update_skipped": float(stats is None),
                    "sync/weight_version": version,
                    "data/epoch": parts.prompts.epoch,
                    "train/lr": lr,
                    "time/step_s": time.perf_counter() - t0,
                }
                logger.log(step, metrics)
                parts.budgets.save(run.path)
                run.commit()
                state = snapshot(step, version, logger, parts, lr, streak, drawn)
                if cfg.output.checkpoint_every and step % cfg.output.checkpoint_every == 0:
                    save(cfg, run, state, parts, model_path, checkpoint.periodic_dir(run.location, step))
                    saved_at = step
    except WorkerDied as e:  # a learner's state is lost with it: the run can only go on from a checkpoint
        raise RunFailed(f"{e} after step {state.step}; {_last_good(run)}") from e
    except KeyboardInterrupt:  # SIGTERM / SIGINT (lenrl.errors.Interrupted): keep what the run has learnt
        if state.step > max(saved_at, 0):
            where = save(cfg, run, state, parts, model_path, checkpoint.periodic_dir(run.location, state.step))
            print(f"lenrl: interrupted after step {state.step}; checkpoint {where}", flush=True)
        raise
    finally:
        logger.close()
    ckpt = None
    if cfg.output.save_final:
        ckpt = str(save(cfg, run, state, parts, model_path, checkpoint.final_dir(run.location)))
    return RunResult(str(run.location), ckpt, cfg.train.steps, state.weight_version)


def scheduled_eval(cfg: Config, parts: Parts, step: int) -> dict[str, float]:
    """In-training evaluation every eval.every steps and at the last; the engines hold this step's weights."""
    if parts.evaluate is not None and (step % cfg.eval.every == 0 or step == cfg.train.steps):
        return parts.evaluate(step)
    return {}


def collect(ahead: Prefetch | None) -> tuple[SampledBatch | None, float]:
    """The prefetched batch and the seconds spent waiting for it after the update (NaN: none in flight)."""
    if ahead is None:
        return None, math.nan
    t0 = time.perf_counter()
    return ahead.result(), time.perf_counter() - t0


def push(parts: Parts, stats: LearnerStats | None, version: int) -> tuple[int, float]:
    """After an update, the next weight version into every engine; the version and the seconds it took
    (NaN on a step without an update, which pushes nothing)."""
    if stats is None:
        return version, math.nan
    t0 = time.perf_counter()
    parts.engines.push_weights(parts.learners.weights(), version + 1)
    return version + 1, time.perf_counter() - t0


def sync_metrics(batch: SampledBatch, trained_at: int, wait_s: float, sync_s: float) -> dict[str, float]:
    """Staleness: the learner's weight version the batch was trained at minus the version that sampled it
    (0 synchronous, 1 under train.async_steps)."""
    sampled_at = float(batch.rollouts.weight_version_B.double().mean())
    return {"sync/staleness": trained_at - sampled_at, "time/prefetch_wait_s": wait_s, "time/weight_sync_s": sync_s}


def update(
    cfg: Config,
    batch: SampledBatch,
    advantage: Callable[[AdvantageInput], torch.Tensor],
    learners: LearnerGroup,
    pad_id: int,
    lr: float,
) -> LearnerStats:
    """Advantages over the kept groups alone (batch statistics included), then one optimisation phase."""
    r = batch.rollouts
    adv_B = advantage(AdvantageInput(batch.score_B, r.group_id_B, r.response_len_B, r.truncated_B))
    # A short batch keeps the configured mini-batch size in groups: fewer optimizer steps, not smaller ones.
    mini_batches = math.ceil(batch.num_groups * cfg.train.mini_batches / cfg.train.prompts_per_step)
    return learners.update(build_train_batch(r, adv_B, pad_id, batch.correct_B), mini_batches, lr)


def lr_factor_at(cfg: Config, step: int) -> float:
    t = cfg.train
    return lr_factor(
        step, total_steps=t.steps, schedule=t.lr_schedule, warmup_steps=t.warmup_steps, min_ratio=t.min_lr_ratio
    )


def check_finite(cfg: Config, stats: LearnerStats, step: int, streak: int, run: RunDir) -> int:
    """The number of updates in a row, up to this one, with a non-finite loss or gradient (their optimizer
    steps were skipped by the learner); `train.max_nonfinite_updates` of them stop the run."""
    if not stats.nonfinite_skipped:
        return 0
    streak += 1
    print(f"lenrl: warning: step {step}: non-finite loss or gradient, update skipped ({streak} in a row)", flush=True)
    if streak >= cfg.train.max_nonfinite_updates:
        raise RunFailed(f"{streak} updates in a row had a non-finite loss or gradient (step {step}); {_last_good(run)}")
    return streak


def _last_good(run: RunDir) -> str:
    ckpt = checkpoint.latest(run.location)
    return f"continue from {ckpt} with --resume" if ckpt else "no checkpoint was written yet"


@dataclass(frozen=True)
class SamplerState:
    """What drawing a batch advances: the data position, the group counter (the engines' seeds), PALU's
    budgets, the driver's RNG."""

    prompts: dict
    next_group: int
    question_budgets: dict[str, int] | None
    rng: dict


def sampler_state(parts: Parts) -> SamplerState:
    budgets = dict(parts.budgets.budgets) if parts.budgets.active else None
    return SamplerState(parts.prompts.state(), parts.sampler.next_group, budgets, checkpoint.rng_state())


def snapshot(
    step: int,
    version: int,
    logger: MetricsLogger,
    parts: Parts,
    lr: float,
    streak: int = 0,
    drawn: SamplerState | None = None,
) -> TrainerState:
    """The driver's state after `step` (cheap: a few lists of ints). `drawn`: the sampler's state taken
    before the next step's batch was prefetched (train.async_steps), so that a resume draws it again."""
    d = drawn or sampler_state(parts)
    return TrainerState(
        step=step,
        weight_version=version,
        metrics_lines=logger.lines,
        prompts=d.prompts,
        next_group=d.next_group,
        question_budgets=d.question_budgets,
        rng=d.rng,
        lr=lr,
        nonfinite_streak=streak,
    )


class Prefetch:
    """The next step's batch, sampled on a daemon thread (Ray calls are thread-safe) while the learner
    updates on this one (train.async_steps). A daemon thread, so a failing run does not wait for it."""

    def __init__(self, sample: Callable[[], SampledBatch]):
        self._out: list[SampledBatch | BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(sample,), name="lenrl-prefetch", daemon=True)
        self._thread.start()

    def _run(self, sample: Callable[[], SampledBatch]) -> None:
        try:
            self._out.append(sample())
        except BaseException as e:  # re-raised on the loop's thread by result()
            self._out.append(e)

    def result(self) -> SampledBatch:
        self._thread.join()
        out = self._out[0]
        if isinstance(out, BaseException):
            raise out
        return out


def prefetch(cfg: Config, parts: Parts, step: int) -> Prefetch | None:
    """Under train.async_steps, start sampling step + 1 now, with the weights the engines hold (one version
    behind once this step's update lands); the loop waits for it before pushing the new weights, so every
    draw of that batch sees the same version. Not after the last step, and not after a checkpoint step: a
    checkpoint then describes a run with nothing in flight, and a resume from it continues exactly."""
    every = cfg.output.checkpoint_every
    if not cfg.train.async_steps or step == cfg.train.steps or (every and step % every == 0):
        return None
    return Prefetch(lambda: parts.sampler.sample(step + 1))


def save(cfg: Config, run: RunDir, state: TrainerState, parts: Parts, model_path: str, where: Location) -> Location:
    """A checkpoint at `where`, then older ones pruned. A URI run mirrors the driver's files first, so that a
    complete checkpoint there never counts more metrics lines than the URI holds."""
    run.sync()
    out = checkpoint.write(where, state, parts.learners, model_path, extra=parts.budgets.save)
    checkpoint.prune(run.location, cfg.output.keep_last)
    return out


def resume(ckpt: Location, parts: Parts) -> TrainerState:
    """Put every part back where checkpoint `ckpt` stood: learners (weights, optimizer, RNG), the engines'
    weights, the prompt stream, the group counter (the engines' per-request seeds), budgets, driver RNG."""
    state = checkpoint.read_state(ckpt)
    parts.learners.load(str(ckpt))
    parts.engines.push_weights(parts.learners.weights(), state.weight_version)
    parts.prompts.restore(state.prompts)
    parts.sampler.next_group = state.next_group
    parts.budgets.budgets = dict(state.question_budgets or {})
    checkpoint.restore_rng(state.rng)
    print(f"lenrl: resumed from {ckpt} (step {state.step})", flush=True)
    return state

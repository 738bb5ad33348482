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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lenrl.algos import ADVANTAGES, AdvantageInput
from lenrl.config import Config
from lenrl.data.stream import PromptStream
from lenrl.errors import RunFailed, WorkerDied, deferred_interrupts
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
    try:
        for step in range(state.step + 1, cfg.train.steps + 1):
            t0 = time.perf_counter()
            batch = parts.sampler.sample(step)

            with deferred_interrupts():
                lr = cfg.train.lr * lr_factor_at(cfg, step)
                version, stats, streak = state.weight_version, None, state.nonfinite_streak
                if batch.num_groups:
                    stats = update(cfg, batch, advantage, parts.learners, pad_id, lr)
                    streak = check_finite(cfg, stats, step, streak, run)
                    version += 1
                    parts.engines.push_weights(parts.learners.weights(), version)

                evals = {}
                if parts.evaluate is not None and (step % cfg.eval.every == 0 or step == cfg.train.steps):
                    evals = parts.evaluate(step)  # the engines hold this step's weights
                metrics = {
                    **batch.metrics,
                    **learner_metrics(stats),
                    **evals,
                    "sample/update_skipped": float(stats is None),
                    "sync/weight_version": version,
                    "data/epoch": parts.prompts.epoch,
                    "train/lr": lr,
                    "time/step_s": time.perf_counter() - t0,
                }
                logger.log(step, metrics)
                parts.budgets.save(run.path)
                run.commit()
                state = snapshot(step, version, logger, parts, lr, streak)
                if cfg.output.checkpoint_every and step % cfg.output.checkpoint_every == 0:
                    save(cfg, run, state, parts, model_path, checkpoint.periodic_dir(run.path, step))
                    saved_at = step
    except WorkerDied as e:  # a learner's state is lost with it: the run can only go on from a checkpoint
        raise RunFailed(f"{e} after step {state.step}; {_last_good(run)}") from e
    except KeyboardInterrupt:  # SIGTERM / SIGINT (lenrl.errors.Interrupted): keep what the run has learnt
        if state.step > max(saved_at, 0):
            where = save(cfg, run, state, parts, model_path, checkpoint.periodic_dir(run.path, state.step))
            print(f"lenrl: interrupted after step {state.step}; checkpoint {where}", flush=True)
        raise
    finally:
        logger.close()
    ckpt = None
    if cfg.output.save_final:
        ckpt = str(save(cfg, run, state, parts, model_path, run.path / checkpoint.FINAL_DIR))
    return RunResult(str(run.path), ckpt, cfg.train.steps, state.weight_version)


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
    ckpt = checkpoint.latest(run.path)
    return f"continue from {ckpt} with --resume" if ckpt else "no checkpoint was written yet"


def snapshot(step: int, version: int, logger: MetricsLogger, parts: Parts, lr: float, streak: int = 0) -> TrainerState:
    """The driver's state after `step` (cheap: a few lists of ints)."""
    budgets = dict(parts.budgets.budgets) if parts.budgets.active else None
    return TrainerState(
        step=step,
        weight_version=version,
        metrics_lines=logger.lines,
        prompts=parts.prompts.state(),
        next_group=parts.sampler.next_group,
        question_budgets=budgets,
        rng=checkpoint.rng_state(),
        lr=lr,
        nonfinite_streak=streak,
    )


def save(cfg: Config, run: RunDir, state: TrainerState, parts: Parts, model_path: str, where: Path) -> Path:
    out = checkpoint.write(where, state, parts.learners, model_path, extra=parts.budgets.save)
    checkpoint.prune(run.path, cfg.output.keep_last)
    return out


def resume(ckpt: Path, parts: Parts) -> TrainerState:
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

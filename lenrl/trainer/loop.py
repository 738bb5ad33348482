"""The RL loop, top to bottom: sample (and filter) -> advantage -> update -> push weights -> log.

Synchronous and on-policy by default: the engines sample with the weights of the previous update, and
the learner's recomputed log-probs of those same tokens are compared with the sampler's every step
(`sync/logp_abs_gap`), which checks that the in-place weight push really reached the engines.
A step whose dynamic sampling kept no group has nothing to learn from: it logs what was drawn, with NaN
update statistics, and neither updates nor pushes weights (trainer/sampling.py says why filtered-out groups
are never trained on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lenrl.algos import ADVANTAGES, AdvantageInput
from lenrl.config import Config
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.learner import LearnerStats
from lenrl.trainer.metrics import MetricsLogger, learner_metrics
from lenrl.trainer.rundir import RunDir
from lenrl.trainer.sampling import BatchSampler, SampledBatch

if TYPE_CHECKING:  # the loop only calls their methods; importing them would pull in ray
    from lenrl.workers.groups import LearnerGroup


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    checkpoint: str | None
    steps: int
    weight_version: int


def train(
    cfg: Config, run: RunDir, sampler: BatchSampler, learners: LearnerGroup, *, pad_id: int, model_path: str
) -> RunResult:
    advantage = ADVANTAGES.bind(cfg.algo.advantage.name, cfg.algo.advantage.params)
    logger = MetricsLogger(run.path, cfg.train.steps, tensorboard=cfg.output.tensorboard)
    version = 0
    try:
        for step in range(1, cfg.train.steps + 1):
            t0 = time.perf_counter()
            batch = sampler.sample(step)

            stats = None
            if batch.num_groups:
                stats = update(cfg, batch, advantage, learners, pad_id)
                version += 1
                sampler.engines.push_weights(learners.weights(), version)

            metrics = {
                **batch.metrics,
                **learner_metrics(stats),
                "sample/update_skipped": float(stats is None),
                "sync/weight_version": version,
                "data/epoch": sampler.prompts.epoch,
                "time/step_s": time.perf_counter() - t0,
            }
            logger.log(step, metrics)
            sampler.budgets.save(run.path)
            run.commit()
    finally:
        logger.close()
    ckpt = learners.save(str(run.path / "checkpoint"), model_path) if cfg.output.save_final else None
    if ckpt is not None:
        sampler.budgets.save(ckpt)  # PALU's per-question state travels with the weights
    return RunResult(str(run.path), ckpt, cfg.train.steps, version)


def update(
    cfg: Config,
    batch: SampledBatch,
    advantage: Callable[[AdvantageInput], torch.Tensor],
    learners: LearnerGroup,
    pad_id: int,
) -> LearnerStats:
    """Advantages over the kept groups alone (batch statistics included), then one optimisation phase."""
    r = batch.rollouts
    adv_B = advantage(AdvantageInput(batch.score_B, r.group_id_B, r.response_len_B, r.truncated_B))
    # A short batch keeps the configured mini-batch size in groups: fewer optimizer steps, not smaller ones.
    mini_batches = math.ceil(batch.num_groups * cfg.train.mini_batches / cfg.train.prompts_per_step)
    return learners.update(build_train_batch(r, adv_B, pad_id, batch.correct_B), mini_batches)

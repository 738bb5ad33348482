"""The RL loop, top to bottom: sample -> score -> advantage -> update -> push weights -> log.

Synchronous and on-policy by default: the engines sample with the weights of the previous update, and
the learner's recomputed log-probs of those same tokens are compared with the sampler's every step
(`sync/logp_abs_gap`), which checks that the in-place weight push really reached the engines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lenrl.algos import ADVANTAGES, AdvantageInput
from lenrl.config import Config
from lenrl.data.stream import PromptStream
from lenrl.records import GenerationRequest, Prompt, Rollout
from lenrl.reward import RewardInput, reward_input_from_rollouts
from lenrl.reward_runner import RewardRunner
from lenrl.trainer.batch import build_train_batch
from lenrl.trainer.metrics import MetricsLogger, generation_metrics, learner_metrics, rollout_metrics
from lenrl.trainer.rundir import RunDir

if TYPE_CHECKING:  # the loop only calls their methods; importing them would pull in ray
    from lenrl.workers.groups import LearnerGroup, RolloutGroup


@dataclass(frozen=True)
class RunResult:
    run_dir: str
    checkpoint: str | None
    steps: int
    weight_version: int


def train(
    cfg: Config,
    run: RunDir,
    prompts: PromptStream,
    engines: RolloutGroup,
    learners: LearnerGroup,
    rewards: RewardRunner,
    *,
    pad_id: int,
    model_path: str,
) -> RunResult:
    advantage = ADVANTAGES.bind(cfg.algo.advantage.name, cfg.algo.advantage.params)
    logger = MetricsLogger(run.path, cfg.train.steps, tensorboard=cfg.output.tensorboard)
    version, next_group = 0, 0
    try:
        for step in range(1, cfg.train.steps + 1):
            t0 = time.perf_counter()
            batch_prompts = prompts.next(cfg.train.prompts_per_step)
            requests = [
                GenerationRequest(next_group + i, p.token_ids, cfg.rollout.n, cfg.rollout.max_tokens)
                for i, p in enumerate(batch_prompts)
            ]
            next_group += len(requests)
            rollouts, gen = engines.generate(requests, step)

            scored = rewards.score(_reward_input(rollouts, requests, batch_prompts))
            adv_B = advantage(
                AdvantageInput(
                    rewards_B=scored.score_B,
                    group_id_B=torch.tensor([r.group_id for r in rollouts]),
                    response_len_B=torch.tensor([r.response_len for r in rollouts]),
                    truncated_B=torch.tensor([r.truncated for r in rollouts]),
                )
            )
            stats = learners.update(build_train_batch(rollouts, adv_B, pad_id), cfg.train.mini_batches)

            version += 1
            engines.push_weights(learners.weights(), version)

            metrics = {
                **rollout_metrics(rollouts, scored.score_B, scored.correct_B),
                **scored.metrics,
                **learner_metrics(stats),
                **generation_metrics(gen),
                "sync/weight_version": version,
                "data/epoch": prompts.epoch,
                "time/step_s": time.perf_counter() - t0,
            }
            logger.log(step, metrics)
            run.commit()
    finally:
        logger.close()
    ckpt = learners.save(str(run.path / "checkpoint"), model_path) if cfg.output.save_final else None
    return RunResult(str(run.path), ckpt, cfg.train.steps, version)


def _reward_input(rollouts: list[Rollout], requests: list[GenerationRequest], prompts: list[Prompt]) -> RewardInput:
    by_group = {req.group_id: p for req, p in zip(requests, prompts, strict=True)}
    rows = [by_group[r.group_id] for r in rollouts]
    return reward_input_from_rollouts(
        rollouts,
        prompts=[p.text for p in rows],
        answers=[p.problem.answer for p in rows],
        meta=[p.problem.meta for p in rows],
    )

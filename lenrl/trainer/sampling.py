"""Drawing one training batch: sample groups, score them, keep the informative ones.

With the `none` filter this is one generation call. With a real filter it is DAPO's dynamic sampling
(arXiv 2503.14476, §3.2; DLER's `RayDAPOTrainer.fit`): keep drawing generation batches until
`prompts_per_step` groups pass the filter, at most `algo.filter_max_draws` draws. If the draws run out,
the batch is topped up with filtered-out groups (their advantages are ~0, so they add no policy gradient)
and `sample/topped_up` says how many, rather than stopping the run as verl does.
Metrics describe everything that was drawn (the policy's behaviour); the batch holds what was kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lenrl.algos import BUDGET_SCHEDULES, GROUP_FILTERS, QUESTION_BUDGETS, FilterInput
from lenrl.config import Config
from lenrl.config_checks import budget_at
from lenrl.data.prompts import PromptRenderer
from lenrl.data.stream import PromptStream
from lenrl.records import GenerationRequest, Prompt, Rollout
from lenrl.reward import reward_input_from_rollouts
from lenrl.reward_runner import RewardRunner
from lenrl.rollout.vllm_engine import GenerationStats
from lenrl.trainer.metrics import generation_metrics, rollout_metrics
from lenrl.trainer.question_budgets import QuestionBudgets

if TYPE_CHECKING:
    from lenrl.workers.groups import RolloutGroup


@dataclass(frozen=True)
class Group:
    """The rollouts of one prompt with their scores."""

    prompt: Prompt
    rollouts: list[Rollout]
    score_B: torch.Tensor
    correct_B: torch.Tensor


@dataclass(frozen=True)
class SampledBatch:
    groups: list[Group]
    metrics: dict[str, float]

    @property
    def rollouts(self) -> list[Rollout]:
        return [r for g in self.groups for r in g.rollouts]

    @property
    def score_B(self) -> torch.Tensor:
        return torch.cat([g.score_B for g in self.groups])

    @property
    def correct_B(self) -> torch.Tensor:
        return torch.cat([g.correct_B for g in self.groups])


class BatchSampler:
    """`render` re-renders prompts whose instruction names `{budget}` with their cap (curriculum);
    `budgets` holds per-question caps L_q (PALU); without it every prompt is capped at B(t)."""

    def __init__(
        self,
        cfg: Config,
        prompts: PromptStream,
        engines: RolloutGroup,
        rewards: RewardRunner,
        *,
        render: PromptRenderer | None = None,
        budgets: QuestionBudgets | None = None,
    ):
        self.cfg, self.prompts, self.engines, self.rewards = cfg, prompts, engines, rewards
        self.render = render if render is not None and render.uses_budget else None
        self.budgets = budgets or QuestionBudgets(QUESTION_BUDGETS.get("none"), "none", cfg.rollout.max_tokens)
        self.keep = GROUP_FILTERS.bind(cfg.algo.filter.name, cfg.algo.filter.params)
        self.schedule = BUDGET_SCHEDULES.bind(cfg.rollout.budget.name, cfg.rollout.budget.params)
        self.max_draws = cfg.algo.filter_max_draws if cfg.algo.filter.name != "none" else 1
        self.next_group = 0

    def sample(self, step: int) -> SampledBatch:
        target = self.cfg.train.prompts_per_step
        kept: list[Group] = []
        dropped: list[Group] = []
        drawn: list[Group] = []
        reward_metrics: list[tuple[int, dict[str, float]]] = []
        tokens, seconds, draws, n_kept = 0, 0.0, 0, 0
        while len(kept) < target and draws < self.max_draws:
            draws += 1
            groups, keep_G, metrics, gen = self._draw(target, step)
            reward_metrics.append((sum(len(g.rollouts) for g in groups), metrics))
            tokens, seconds = tokens + gen.tokens, seconds + gen.seconds
            drawn += groups
            kept += [g for g, k in zip(groups, keep_G, strict=True) if k]
            n_kept += sum(keep_G)
            dropped += [g for g, k in zip(groups, keep_G, strict=True) if not k]
        topped_up = max(0, target - len(kept))
        batch = (kept + dropped[:topped_up])[:target]
        all_rollouts = [r for g in drawn for r in g.rollouts]
        metrics = {
            **rollout_metrics(
                all_rollouts, torch.cat([g.score_B for g in drawn]), torch.cat([g.correct_B for g in drawn])
            ),
            **_weighted_mean(reward_metrics),
            **generation_metrics(GenerationStats(seconds=seconds, tokens=tokens)),
            "sample/draws": draws,
            "sample/kept_frac": n_kept / len(drawn),
            "sample/topped_up": topped_up,
            **self.budgets.metrics(),
        }
        return SampledBatch(batch, metrics)

    def _draw(self, k: int, step: int):  # -> groups, keep flags per group, reward metrics, generation stats
        prompts = self.prompts.next(k)
        step_budget = budget_at(self.cfg, self.schedule, step)
        caps = [self.budgets.cap(p.problem.id, step_budget) for p in prompts]
        if self.render is not None:  # the budget is written into the prompt: render with each cap
            prompts = self.render([p.problem for p in prompts], caps)
        n = self.cfg.rollout.n
        requests = [
            GenerationRequest(self.next_group + i, p.token_ids, n, cap)
            for i, (p, cap) in enumerate(zip(prompts, caps, strict=True))
        ]
        self.next_group += k
        rollouts, gen = self.engines.generate(requests, step)
        by_gid = {req.group_id: p for req, p in zip(requests, prompts, strict=True)}
        rows = [by_gid[r.group_id] for r in rollouts]
        scored = self.rewards.score(
            reward_input_from_rollouts(
                rollouts, [p.text for p in rows], [p.problem.answer for p in rows], [p.problem.meta for p in rows]
            )
        )
        gid_B = torch.tensor([r.group_id for r in rollouts])
        keep_B = self.keep(FilterInput(scored.score_B, scored.correct_B, gid_B))
        groups, keep_G = [], []
        for req in requests:
            idx = (gid_B == req.group_id).nonzero().flatten()
            groups.append(
                Group(by_gid[req.group_id], [rollouts[i] for i in idx], scored.score_B[idx], scored.correct_B[idx])
            )
            keep_G.append(bool(keep_B[idx].all()))
            lens = torch.tensor([rollouts[i].response_len for i in idx])
            self.budgets.observe(by_gid[req.group_id].problem.id, scored.correct_B[idx], lens)
        return groups, keep_G, scored.metrics, gen


def _weighted_mean(parts: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Sample-weighted mean of per-draw reward metrics (error counts are summed); NaN entries (no
    applicable sample) are skipped."""
    out: dict[str, float] = {}
    for key in {k for _, m in parts for k in m}:
        vals = [(n, m[key]) for n, m in parts if key in m and not math.isnan(m[key])]
        if key == "reward/errors":
            out[key] = sum(v for _, v in vals)
        else:
            out[key] = sum(n * v for n, v in vals) / sum(n for n, _ in vals) if vals else math.nan
    return out

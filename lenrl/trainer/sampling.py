"""Drawing one training batch: sample groups, score them, keep the informative ones.

With the `none` filter this is one generation call. With a real filter it is DAPO's dynamic sampling
(arXiv 2503.14476, §3.2; DLER's `RayDAPOTrainer.fit`): keep drawing generation batches until
`prompts_per_step` groups pass the filter, at most `algo.filter_max_draws` draws.

If the draws run out, the batch is short: it holds only the groups that passed, `sample/short_groups`
says how many are missing, and a step where none passed has no update (the loop logs
`sample/update_skipped`). verl stops the run instead. Filtered-out groups are never topped up into the
batch: their advantage is ~0 only under a group-relative estimator. A batch-level one re-centres them:
under `group_mean_batch_whiten` (DLER, docs/algorithms.md §1.2) an all-wrong group's centred rewards are 0,
but whitening subtracts the token-weighted batch mean, which is negative whenever correct answers are
shorter than wrong ones: every one of its wrong responses then gets a positive advantage. Batch statistics
(the whitening mean and std, a group loss's group count) must be those of the kept groups.
Leaving the groups out gives them exactly zero weight whatever the estimator or loss, and costs no
forward or backward pass; keeping them with a zero loss mask would instead need every normaliser
(sequence and group counts) to skip them too.
Metrics describe everything that was drawn (the policy's behaviour); the batch holds what was kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lenrl.algos import BUDGET_SCHEDULES, GROUP_FILTERS, QUESTION_BUDGETS, FilterInput
from lenrl.algos.budgets import budget_at
from lenrl.config import Config
from lenrl.data.prompts import PromptRenderer
from lenrl.data.stream import PromptStream
from lenrl.records import GenerationRequest, GenerationStats, Prompt, RolloutBatch
from lenrl.reward import reward_input_from_rollouts
from lenrl.reward_runner import COUNT_METRICS, RewardRunner
from lenrl.trainer.metrics import generation_metrics, rollout_metrics
from lenrl.trainer.question_budgets import QuestionBudgets

if TYPE_CHECKING:
    from lenrl.workers.groups import RolloutGroup


@dataclass(frozen=True)
class SampledBatch:
    """The kept groups of one step. `prompts[g]` is the prompt of the g-th group, whose rows are contiguous
    in `rollouts`, in the same order; score_B and correct_B (verifier outcome) align with the rows.
    `metrics` describe every drawn group, kept or not."""

    prompts: list[Prompt]
    rollouts: RolloutBatch
    score_B: torch.Tensor
    correct_B: torch.Tensor
    metrics: dict[str, float]

    @property
    def num_groups(self) -> int:
        return len(self.prompts)


@dataclass(frozen=True)
class Draw:
    """One scored generation batch. group_B [B] long: each row's group position in `prompts`;
    keep_G [G] bool: the group passed the filter (every one of its rows kept)."""

    prompts: list[Prompt]
    rollouts: RolloutBatch
    score_B: torch.Tensor
    correct_B: torch.Tensor
    group_B: torch.Tensor
    keep_G: torch.Tensor
    reward_metrics: dict[str, float]
    gen: GenerationStats


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
        draws: list[Draw] = []
        while sum(int(d.keep_G.sum()) for d in draws) < target and len(draws) < self.max_draws:
            draws.append(self._draw(target, step))
        prompts: list[Prompt] = []
        rows: list[torch.Tensor] = []  # per draw: the rows of its kept groups, up to `target` groups in all
        for d in draws:
            take_G = d.keep_G & (d.keep_G.cumsum(0) <= target - len(prompts))
            prompts += [p for p, t in zip(d.prompts, take_G.tolist(), strict=True) if t]
            rows.append(take_G[d.group_B])
        drawn = RolloutBatch.cat([d.rollouts for d in draws])
        metrics = {
            **rollout_metrics(drawn, torch.cat([d.score_B for d in draws]), torch.cat([d.correct_B for d in draws])),
            **_weighted_mean([(len(d.rollouts), d.reward_metrics) for d in draws]),
            **generation_metrics(
                GenerationStats(
                    seconds=sum(d.gen.seconds for d in draws),
                    tokens=sum(d.gen.tokens for d in draws),
                    peak_rss_gib=max(d.gen.peak_rss_gib for d in draws),
                )
            ),
            "sample/draws": len(draws),
            "sample/kept_frac": sum(int(d.keep_G.sum()) for d in draws) / sum(len(d.prompts) for d in draws),
            "sample/short_groups": target - len(prompts),
            **self.budgets.metrics(),
        }
        return SampledBatch(
            prompts,
            RolloutBatch.cat([d.rollouts.select(r) for d, r in zip(draws, rows, strict=True)]),
            torch.cat([d.score_B[r] for d, r in zip(draws, rows, strict=True)]),
            torch.cat([d.correct_B[r] for d, r in zip(draws, rows, strict=True)]),
            metrics,
        )

    def _draw(self, k: int, step: int) -> Draw:
        prompts = self.prompts.next(k)
        step_budget = budget_at(self.cfg, self.schedule, step)
        caps = [self.budgets.cap(p.problem.id, step_budget) for p in prompts]
        if self.render is not None:  # the budget is written into the prompt: render with each cap
            prompts = self.render([p.problem for p in prompts], caps)
        requests = [
            GenerationRequest(self.next_group + i, p.token_ids, self.cfg.rollout.n, cap)
            for i, (p, cap) in enumerate(zip(prompts, caps, strict=True))
        ]
        self.next_group += k
        out, gen = self.engines.generate(requests, step)
        rollouts = RolloutBatch.from_rollouts(out)
        gid_G = torch.tensor([q.group_id for q in requests], dtype=torch.long)
        group_B = (rollouts.group_id_B[:, None] == gid_G[None, :]).long().argmax(1)
        rows = [prompts[g] for g in group_B.tolist()]
        scored = self.rewards.score(
            reward_input_from_rollouts(
                rollouts, [p.text for p in rows], [p.problem.answer for p in rows], [p.problem.meta for p in rows]
            )
        )
        keep_B = self.keep(FilterInput(scored.score_B, scored.correct_B, rollouts.group_id_B))
        dropped_G = torch.zeros(len(prompts), dtype=torch.long).index_add_(0, group_B, (~keep_B.bool()).long())
        for g, p in enumerate(prompts):
            in_g = group_B == g
            self.budgets.observe(
                p.problem.id, scored.correct_B[in_g], rollouts.response_len_B[in_g], rollouts.truncated_B[in_g]
            )
        return Draw(prompts, rollouts, scored.score_B, scored.correct_B, group_B, dropped_G == 0, scored.metrics, gen)


def _weighted_mean(parts: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Sample-weighted mean of per-draw reward metrics (the counts in COUNT_METRICS are summed); NaN
    entries (no applicable sample) are skipped."""
    out: dict[str, float] = {}
    for key in {k for _, m in parts for k in m}:
        vals = [(n, m[key]) for n, m in parts if key in m and not math.isnan(m[key])]
        if key in COUNT_METRICS:
            out[key] = sum(v for _, v in vals)
        else:
            out[key] = sum(n * v for n, v in vals) / sum(n for n, _ in vals) if vals else math.nan
    return out

"""The reward plugin API.

A reward scores a whole rollout batch at once, because length rewards are often group-relative
(shortest correct answer in the group, normalisation by the group's length range); per-sample rewards
just loop inside. Plugins register by name with `@register_reward("name")` and take their parameters as
keyword-only arguments, bound from config at load time:

    @register_reward("my_reward")
    def my_reward(x: RewardInput, *, scale: float = 1.0) -> RewardOutput: ...

A score of NaN means "not applicable" for that sample (it contributes nothing to the weighted sum).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lenrl.records import Rollout
from lenrl.registry import Registry

REWARDS = Registry("reward")
register_reward = REWARDS.register
# A grader decides one sample's correctness: `fn(completion: str, answer: str, *, thinking: bool,
# **params) -> bool`. `thinking` comes from `model.thinking` at run time, never from the grader's params.
GRADERS = Registry("grader", runtime=("thinking",))
register_grader = GRADERS.register


@dataclass(frozen=True)
class RewardInput:
    """Everything a reward may look at, one entry per completion (B of them).

    prompts / completions: text; completion_ids: token ids; answers: reference answers;
    meta: the dataset row's other columns. Tensors: response_len_B and think_len_B (long, tokens),
    truncated_B (bool, finish reason was "length"), group_id_B (long), budget_B (long, max_tokens).
    """

    prompts: list[str]
    completions: list[str]
    completion_ids: list[list[int]]
    answers: list[str]
    meta: list[dict[str, Any]]
    response_len_B: torch.Tensor
    think_len_B: torch.Tensor
    truncated_B: torch.Tensor
    group_id_B: torch.Tensor
    budget_B: torch.Tensor

    def __len__(self) -> int:
        return len(self.completions)

    def select(self, idx: list[int]) -> RewardInput:
        """The sub-batch at positions `idx` (used to split a batch into whole groups)."""
        t = torch.tensor(idx, dtype=torch.long)
        return RewardInput(
            prompts=[self.prompts[i] for i in idx],
            completions=[self.completions[i] for i in idx],
            completion_ids=[self.completion_ids[i] for i in idx],
            answers=[self.answers[i] for i in idx],
            meta=[self.meta[i] for i in idx],
            response_len_B=self.response_len_B[t],
            think_len_B=self.think_len_B[t],
            truncated_B=self.truncated_B[t],
            group_id_B=self.group_id_B[t],
            budget_B=self.budget_B[t],
        )


@dataclass
class RewardOutput:
    """score_B: float, NaN = not applicable. correct_B: optional bool verifier outcome (accuracy,
    filtering, pass@k). parts: named float tensors, for logging only."""

    score_B: torch.Tensor
    correct_B: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def reward_input_from_rollouts(
    rollouts: list[Rollout], prompts: list[str], answers: list[str], meta: list[dict[str, Any]]
) -> RewardInput:
    """Build the reward view of a rollout batch; prompts/answers/meta are aligned with `rollouts`."""
    return RewardInput(
        prompts=prompts,
        completions=[r.text for r in rollouts],
        completion_ids=[list(r.response_ids) for r in rollouts],
        answers=answers,
        meta=meta,
        response_len_B=torch.tensor([r.response_len for r in rollouts], dtype=torch.long),
        think_len_B=torch.tensor([r.think_len for r in rollouts], dtype=torch.long),
        truncated_B=torch.tensor([r.truncated for r in rollouts], dtype=torch.bool),
        group_id_B=torch.tensor([r.group_id for r in rollouts], dtype=torch.long),
        budget_B=torch.tensor([r.budget for r in rollouts], dtype=torch.long),
    )


def nan_to_zero(x_B: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x_B), torch.zeros_like(x_B), x_B)


def nanmean(x_B: torch.Tensor) -> float:
    v = x_B[~torch.isnan(x_B)]
    return float(v.mean()) if v.numel() else math.nan


def is_trl_style(fn: Callable[..., Any]) -> bool:
    """A TRL reward function: `f(prompts, completions, **kwargs) -> list[float | None]`."""
    names = list(inspect.signature(fn).parameters)
    return names[:2] == ["prompts", "completions"]


def call_reward(fn: Callable[..., Any], x: RewardInput, params: dict[str, Any]) -> RewardOutput:
    """Call a lenrl plugin, or a plain TRL reward function unchanged.

    TRL functions get what TRL's GRPOTrainer passes: `prompts`, `completions` (text), `completion_ids`,
    and every dataset column as a list keyed by its name (here the reference answer is also passed as
    `answer`); a `None` score means "not applicable", as in TRL.
    """
    if not is_trl_style(fn):
        return fn(x, **params)
    columns = {k: [m.get(k) for m in x.meta] for k in dict.fromkeys(k for m in x.meta for k in m)}
    columns.setdefault("answer", list(x.answers))
    scores = fn(x.prompts, x.completions, completion_ids=x.completion_ids, **columns, **params)
    if len(scores) != len(x):
        raise ValueError(f"returned {len(scores)} scores for {len(x)} completions")
    return RewardOutput(torch.tensor([math.nan if s is None else float(s) for s in scores], dtype=torch.float32))

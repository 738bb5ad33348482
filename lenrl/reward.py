"""The reward plugin API.

A reward scores a whole rollout batch at once, because length rewards are often group-relative
(shortest correct answer in the group, normalisation by the group's length range); per-sample rewards
just loop inside. Plugins register by name with `@register_reward("name")` and take their parameters as
keyword-only arguments, bound from config at load time:

    @register_reward("my_reward")
    def my_reward(x: RewardInput, *, scale: float = 1.0) -> RewardOutput: ...

A score of NaN means "not applicable" for that sample (it contributes nothing to the weighted sum).

Correctness is not a reward's business: the run's grader (`GRADERS`, `grader:` in the config) decides it
once per sample before any reward runs, and every reward reads that verdict as `x.correct_B` (`graded`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lenrl.records import RolloutBatch
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
    correct_B (bool): the run's grader's verdict, decided once per sample by the RewardRunner before any
    reward runs (None until then; read it with `graded(x)`). thinking: the run's thinking mode
    (`model.thinking`): whether a response without `</think>` has an answer (`lenrl.lengths.answer_span`).
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
    correct_B: torch.Tensor | None = None
    thinking: bool = False

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
            correct_B=None if self.correct_B is None else self.correct_B[t],
            thinking=self.thinking,
        )


def graded(x: RewardInput) -> torch.Tensor:
    """x.correct_B (B,) bool: the grader's verdict that every reward reads instead of grading again."""
    if x.correct_B is None:
        raise ValueError("this reward reads x.correct_B, which the RewardRunner's grader sets; it is None here")
    if tuple(x.correct_B.shape) != (len(x),):
        raise ValueError(f"x.correct_B has shape {tuple(x.correct_B.shape)}, expected ({len(x)},)")
    return x.correct_B.bool()


@dataclass
class RewardOutput:
    """score_B: float, NaN = not applicable. parts: named float tensors, for logging only. Correctness
    is not a reward's output: the run's grader decides it once (RewardInput.correct_B)."""

    score_B: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def reward_input_from_rollouts(
    rollouts: RolloutBatch, prompts: list[str], answers: list[str], meta: list[dict[str, Any]]
) -> RewardInput:
    """The reward view of a columnar rollout batch; prompts/answers/meta are aligned with its rows."""
    return RewardInput(
        prompts=prompts,
        completions=list(rollouts.texts),
        completion_ids=[list(ids) for ids in rollouts.response_ids],
        answers=answers,
        meta=meta,
        response_len_B=rollouts.response_len_B,
        think_len_B=rollouts.think_len_B,
        truncated_B=rollouts.truncated_B,
        group_id_B=rollouts.group_id_B,
        budget_B=rollouts.budget_B,
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

"""Typed records that cross function and process boundaries.

Only these dataclasses travel between the driver and Ray actors (docs/design.md 4.5): no string-keyed dicts.
Lengths are first-class: every rollout carries its total token length, its thinking-span length,
its truncation flag, its budget (the max_tokens it was sampled under) and its group id.
The engines return one `Rollout` per sample; the trainer turns them into one columnar `RolloutBatch`
right after generation, and every tensor view (reward, filter, advantage, training batch, metrics) is
read from its columns.
(Named `records`, not `types`: `python lenrl/train.py` puts `lenrl/` first on sys.path, where a
`types.py` would shadow the standard library.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Problem:
    """One dataset row: a question with a checkable reference answer."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """A problem rendered through the chat template and tokenized."""

    problem: Problem
    text: str
    token_ids: list[int]


@dataclass(frozen=True)
class GenerationRequest:
    """Sample `n` responses for one prompt, each capped at `max_tokens` (the budget). The sampling settings
    default to the engine's (rollout.temperature, rollout.top_p, its seed); an evaluation sets its own, so
    that it samples the same tokens on the training engines as on `lenrl eval`'s."""

    group_id: int
    prompt_ids: list[int]
    n: int
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    """base of the per-request seed (vllm_engine.request_seed) instead of the engine's"""


@dataclass(frozen=True)
class Rollout:
    """One sampled response.

    `sampler_logprobs[t]` is the sampling engine's log-probability of `response_ids[t]`.
    `finish_reason` is the engine's: "stop" (EOS or a stop string) or "length" (hit `budget`).
    `think_len` counts response tokens up to and including `</think>`; 0 when there is none.
    """

    group_id: int
    prompt_ids: list[int]
    response_ids: list[int]
    sampler_logprobs: list[float]
    finish_reason: str
    budget: int
    think_len: int
    text: str
    weight_version: int

    @property
    def response_len(self) -> int:
        return len(self.response_ids)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class GenerationStats:
    """Wall time and response tokens of one generation call, and the engine process's peak memory."""

    seconds: float
    tokens: int
    peak_rss_gib: float = 0.0


@dataclass(frozen=True)
class RolloutBatch:
    """A rollout batch in columns, built once from the engines' rollouts (`from_rollouts`).

    Tensors [B]: group_id_B, response_len_B, think_len_B, budget_B, weight_version_B (long),
    truncated_B (bool, finish reason "length"). Ragged per row: prompt_ids, response_ids,
    sampler_logprobs (aligned with response_ids), texts. Rows of a group are contiguous.
    """

    group_id_B: torch.Tensor
    response_len_B: torch.Tensor
    think_len_B: torch.Tensor
    truncated_B: torch.Tensor
    budget_B: torch.Tensor
    weight_version_B: torch.Tensor
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    sampler_logprobs: list[list[float]]
    texts: list[str]

    @classmethod
    def from_rollouts(cls, rollouts: Sequence[Rollout]) -> RolloutBatch:
        def col(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor([getattr(r, name) for r in rollouts], dtype=dtype)

        return cls(
            group_id_B=col("group_id", torch.long),
            response_len_B=col("response_len", torch.long),
            think_len_B=col("think_len", torch.long),
            truncated_B=col("truncated", torch.bool),
            budget_B=col("budget", torch.long),
            weight_version_B=col("weight_version", torch.long),
            prompt_ids=[list(r.prompt_ids) for r in rollouts],
            response_ids=[list(r.response_ids) for r in rollouts],
            sampler_logprobs=[list(r.sampler_logprobs) for r in rollouts],
            texts=[r.text for r in rollouts],
        )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_groups(self) -> int:
        return len(self.group_id_B.unique())

    def select(self, keep_B: torch.Tensor) -> RolloutBatch:
        """The rows where the bool mask `keep_B` [B] is true, in order."""
        idx = keep_B.nonzero().flatten().tolist()
        return RolloutBatch(
            group_id_B=self.group_id_B[keep_B],
            response_len_B=self.response_len_B[keep_B],
            think_len_B=self.think_len_B[keep_B],
            truncated_B=self.truncated_B[keep_B],
            budget_B=self.budget_B[keep_B],
            weight_version_B=self.weight_version_B[keep_B],
            prompt_ids=[self.prompt_ids[i] for i in idx],
            response_ids=[self.response_ids[i] for i in idx],
            sampler_logprobs=[self.sampler_logprobs[i] for i in idx],
            texts=[self.texts[i] for i in idx],
        )

    @staticmethod
    def cat(batches: Sequence[RolloutBatch]) -> RolloutBatch:
        """The rows of `batches`, one after another."""
        return RolloutBatch(
            group_id_B=torch.cat([b.group_id_B for b in batches]),
            response_len_B=torch.cat([b.response_len_B for b in batches]),
            think_len_B=torch.cat([b.think_len_B for b in batches]),
            truncated_B=torch.cat([b.truncated_B for b in batches]),
            budget_B=torch.cat([b.budget_B for b in batches]),
            weight_version_B=torch.cat([b.weight_version_B for b in batches]),
            prompt_ids=[p for b in batches for p in b.prompt_ids],
            response_ids=[r for b in batches for r in b.response_ids],
            sampler_logprobs=[lp for b in batches for lp in b.sampler_logprobs],
            texts=[t for b in batches for t in b.texts],
        )

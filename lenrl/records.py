"""Typed records that cross function and process boundaries.

Only these dataclasses travel between the driver and Ray actors (design.md 4.5): no string-keyed dicts.
Lengths are first-class: every rollout carries its total token length, its thinking-span length,
its truncation flag, its budget (the max_tokens it was sampled under) and its group id.
(Named `records`, not `types`: `python lenrl/train.py` puts `lenrl/` first on sys.path, where a
`types.py` would shadow the standard library.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    """Sample `n` responses for one prompt, each capped at `max_tokens` (the budget)."""

    group_id: int
    prompt_ids: list[int]
    n: int
    max_tokens: int


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

"""Fan-out over Ray actors: rollout engines and data-parallel learners.

Ray patterns (docs/design.md 4.5): launch every remote call first, then fetch them together; hand object refs
from actor to actor (the learner's weights go to every engine without passing through the driver).
"""

from __future__ import annotations

import socket
from dataclasses import fields

import ray
import torch

from lenrl.records import GenerationRequest, GenerationStats, Rollout
from lenrl.trainer.batch import TrainBatch
from lenrl.trainer.learner import LearnerStats, MiniBatch


class RolloutGroup:
    def __init__(self, engines: list[ray.actor.ActorHandle]):
        self.engines = engines

    def generate(self, requests: list[GenerationRequest], step: int) -> tuple[list[Rollout], GenerationStats]:
        """Split requests across engines (whole groups each) and return rollouts in request order."""
        k = len(self.engines)
        chunks = [requests[i::k] for i in range(k)]
        refs = [e.generate.remote(c, step) for e, c in zip(self.engines, chunks, strict=True) if c]
        results: list[tuple[list[Rollout], GenerationStats]] = ray.get(refs)
        by_group: dict[int, list[Rollout]] = {}
        for rollouts, _ in results:
            for r in rollouts:
                by_group.setdefault(r.group_id, []).append(r)
        ordered = [r for req in requests for r in by_group[req.group_id]]
        stats = GenerationStats(seconds=max(s.seconds for _, s in results), tokens=sum(s.tokens for _, s in results))
        return ordered, stats

    def push_weights(self, weights: ray.ObjectRef, version: int) -> None:
        ray.get([e.update_weights.remote(weights, version) for e in self.engines])


class LearnerGroup:
    def __init__(self, learners: list[ray.actor.ActorHandle]):
        self.learners = learners
        if len(learners) > 1:
            addr = ray.util.get_node_ip_address()
            port = _free_port()
            ray.get([h.join_group.remote(i, len(learners), addr, port) for i, h in enumerate(learners)])

    def update(self, batch: TrainBatch, mini_batches: int) -> LearnerStats:
        """Cut the batch into `mini_batches` optimizer steps and each step into one shard per learner,
        always along group boundaries (rows of a group are contiguous)."""
        plans: list[list[MiniBatch]] = [[] for _ in self.learners]
        for rows in _split_groups(batch.group_id_B, mini_batches):
            step = batch.select(rows)
            for i, shard_rows in enumerate(_split_groups(step.group_id_B, len(self.learners))):
                plans[i].append(
                    MiniBatch(step.select(shard_rows), step.num_tokens, len(step), len(step.group_id_B.unique()))
                )
        stats: list[LearnerStats] = ray.get([h.update.remote(p) for h, p in zip(self.learners, plans, strict=True)])
        return _merge_stats(stats)

    def weights(self) -> ray.ObjectRef:
        return self.learners[0].weights.remote()

    def save(self, path: str, tokenizer_src: str) -> str:
        return str(ray.get(self.learners[0].save.remote(path, tokenizer_src)))


def _split_groups(group_id_B: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """Row indices of `parts` contiguous chunks holding whole groups, as even as the groups allow. A short
    batch (dynamic sampling ran out of draws) may hold fewer groups than parts: one group per chunk, then
    empty chunks."""
    starts = [0] + [i for i in range(1, len(group_id_B)) if group_id_B[i] != group_id_B[i - 1]]
    edges, g = [*starts, len(group_id_B)], len(starts)
    bounds = [edges[round(j * g / parts) if g >= parts else min(j, g)] for j in range(parts)] + [len(group_id_B)]
    return [torch.arange(bounds[j], bounds[j + 1]) for j in range(parts)]


def _merge_stats(stats: list[LearnerStats]) -> LearnerStats:
    """Token-weighted means across learner shards; loss and grad norm are already global."""
    tok = max(sum(s.tokens for s in stats), 1)
    merged = {f.name: sum(getattr(s, f.name) * s.tokens for s in stats) / tok for f in fields(LearnerStats)}
    merged.update(
        loss=sum(s.loss for s in stats),
        grad_norm=stats[0].grad_norm,
        tokens=sum(s.tokens for s in stats),
        seconds=max(s.seconds for s in stats),
    )
    return LearnerStats(**merged)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]

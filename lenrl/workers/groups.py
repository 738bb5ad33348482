"""Fan-out over Ray actors: rollout engines and data-parallel learners.

Ray patterns (docs/design.md 4.5): launch every remote call first, then fetch them together; hand object refs
from actor to actor (the learner's weights go to every engine without passing through the driver).

Faults: an engine that dies is restarted by Ray (`max_restarts`, ray.engine_restarts); the group gives it the
current weights and sends its share of the requests again. The per-request seeds make the regenerated
rollouts the ones the dead engine would have returned. A learner that dies raises `WorkerDied`, which the
loop turns into a failed run naming the last good checkpoint (a learner's optimizer state cannot be rebuilt).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import ray
import torch

from lenrl.errors import LenrlError, WorkerDied
from lenrl.records import GenerationRequest, GenerationStats, Rollout
from lenrl.trainer.batch import TrainBatch
from lenrl.trainer.learner import LearnerStats, MiniBatch
from lenrl.trainer.microbatch import group_edges

DIED = ray.exceptions.RayActorError
"""a dead actor, or one being restarted (ActorUnavailableError is a subclass)"""
Call = Callable[[ray.actor.ActorHandle], ray.ObjectRef]
"""one remote call on an engine, made again on the restarted actor when the first one died"""


class RolloutGroup:
    def __init__(self, engines: list[ray.actor.ActorHandle], restarts: int = 0):
        self.engines, self.restarts = engines, restarts
        self.weights: list[ray.ObjectRef] | None = None  # the newest pushed weights (None: the starting model)
        self.version = 0

    def generate(self, requests: list[GenerationRequest], step: int) -> tuple[list[Rollout], GenerationStats]:
        """Split requests across engines (whole groups each) and return rollouts in request order."""
        k = len(self.engines)
        chunks = [requests[i::k] for i in range(k)]

        def call(chunk: list[GenerationRequest]) -> Call:
            return lambda e: e.generate.remote(chunk, step)

        calls = [(i, call(c)) for i, c in enumerate(chunks) if c]
        results: list[tuple[list[Rollout], GenerationStats]] = self._gather(calls, f"generating step {step}")
        by_group: dict[int, list[Rollout]] = {}
        for rollouts, _ in results:
            for r in rollouts:
                by_group.setdefault(r.group_id, []).append(r)
        ordered = [r for req in requests for r in by_group[req.group_id]]
        stats = GenerationStats(
            seconds=max(s.seconds for _, s in results),
            tokens=sum(s.tokens for _, s in results),
            peak_rss_gib=max(s.peak_rss_gib for _, s in results),
        )
        return ordered, stats

    def push_weights(self, weights: list[ray.ObjectRef], version: int) -> None:
        """Load `weights` (references to buckets of named tensors, `LearnerGroup.weights`) into every engine
        in place. If the learner that made them died, every call fails
        with its error, each engine is retried and the run ends (WorkerDied)."""
        self.weights, self.version = weights, version  # kept for an engine that restarts
        calls: list[tuple[int, Call]] = [
            (i, lambda e: e.update_weights.remote(weights, version)) for i in range(len(self.engines))
        ]
        self._gather(calls, "loading weights")

    def _gather(self, calls: list[tuple[int, Call]], what: str) -> list[Any]:
        """Launch every call, then collect them in order (each through `_finish`)."""
        refs = [call(self.engines[i]) for i, call in calls]
        return [self._finish(i, call, ref, what) for (i, call), ref in zip(calls, refs, strict=True)]

    def _finish(self, i: int, call: Call, ref: ray.ObjectRef, what: str) -> Any:
        """Engine i's result; when it died, Ray restarts it (with the starting model): wait until it is up,
        give it the current weights and make the call again, up to `restarts` times."""
        for attempt in range(self.restarts + 1):
            try:
                return ray.get(ref)
            except ray.exceptions.RayActorError as e:  # ActorDiedError, or ActorUnavailableError mid-restart
                if attempt == self.restarts:
                    raise WorkerDied(f"rollout engine {i} failed {attempt + 1} times while {what}: {e}") from e
                print(f"lenrl: rollout engine {i} died while {what}; restarting it and trying again", flush=True)
                try:
                    self._revive(i)
                except ray.exceptions.RayActorError as again:  # restarts used up, or it died once more
                    raise WorkerDied(f"rollout engine {i} could not be brought back while {what}: {again}") from again
                ref = call(self.engines[i])
        raise AssertionError("unreachable")

    def _revive(self, i: int, timeout_s: float = 900.0) -> None:
        """Wait for Ray to bring engine i back, then load the current weights into it. Calls to an actor that
        is restarting fail at once (ActorUnavailableError) rather than wait, hence the polling."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ray.get(self.engines[i].__ray_ready__.remote())
                break
            except ray.exceptions.ActorUnavailableError as e:
                if time.monotonic() > deadline:
                    raise WorkerDied(f"rollout engine {i} did not come back within {timeout_s:.0f} s") from e
                time.sleep(1.0)
        if self.weights is not None:
            ray.get(self.engines[i].update_weights.remote(self.weights, self.version))


class LearnerGroup:
    def __init__(self, learners: list[ray.actor.ActorHandle], weight_bucket_mib: float = 0.0):
        self.learners, self.weight_bucket_mib = learners, weight_bucket_mib
        if len(learners) > 1:
            addr = ray.util.get_node_ip_address()
            port = _free_port()
            ray.get([h.join_group.remote(i, len(learners), addr, port) for i, h in enumerate(learners)])

    def update(self, batch: TrainBatch, mini_batches: int, lr: float | None = None) -> LearnerStats:
        """Cut the batch into `mini_batches` optimizer steps and each step into one shard per learner,
        always along group boundaries (rows of a group are contiguous)."""
        plans: list[list[MiniBatch]] = [[] for _ in self.learners]
        for rows in _split_groups(batch.group_id_B, mini_batches):
            step = batch.select(rows)
            for i, shard_rows in enumerate(_split_groups(step.group_id_B, len(self.learners))):
                plans[i].append(
                    MiniBatch(step.select(shard_rows), step.num_tokens, len(step), len(step.group_id_B.unique()))
                )
        stats: list[LearnerStats] = _get([h.update.remote(p, lr) for h, p in zip(self.learners, plans, strict=True)])
        return _merge_stats(stats)

    def weights(self) -> list[ray.ObjectRef]:
        """References to the first learner's weights, one per bucket of about `weight_bucket_mib` MiB
        (`Learner.weight_buckets`), handed to the engines: the tensors never enter the driver."""
        buckets: Any = self.learners[0].weight_buckets.options(num_returns="streaming").remote(self.weight_bucket_mib)
        try:
            return list(buckets)  # the references, once the learner has put every bucket into the object store
        except DIED as e:
            raise WorkerDied(f"a learner died ({type(e).__name__})") from e

    def save(self, path: str, tokenizer_src: str) -> str:
        """Data-parallel learners hold identical weights and optimizer states: the first one writes them."""
        return str(_get(self.learners[0].save.remote(path, tokenizer_src)))

    def load(self, path: str) -> None:
        _get([h.load.remote(path) for h in self.learners])


def _get(refs: Any) -> Any:
    """ray.get, with a dead learner reported as `WorkerDied`."""
    try:
        return ray.get(refs)
    except DIED as e:
        raise WorkerDied(f"a learner died ({type(e).__name__})") from e


def place_learners(count: int, cpus: float, gpus: float, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Ray options that put `count` learners into one placement group, a bundle each, packed onto as few
    nodes as possible (their gradient all-reduce then stays inside a node where it can: NVLink rather than
    the network), and reserved together before any learner starts. Fails in one line when the cluster
    cannot hold them."""
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    pg = placement_group([bundle] * count, strategy="PACK")
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        raise LenrlError(
            f"ray: the cluster cannot place {count} learner(s) with {bundle} each within {timeout_s:.0f} s "
            f"(ray.learners, ray.cpus_per_learner, ray.gpus_per_learner; free now: {ray.available_resources()})"
        )
    return [
        {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)}
        for i in range(count)
    ]


def _split_groups(group_id_B: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """Row indices of `parts` contiguous chunks holding whole groups, as even as the groups allow. A short
    batch (dynamic sampling ran out of draws) may hold fewer groups than parts: one group per chunk, then
    empty chunks."""
    edges = group_edges(group_id_B)
    g = len(edges) - 1
    bounds = [edges[round(j * g / parts) if g >= parts else min(j, g)] for j in range(parts)] + [len(group_id_B)]
    return [torch.arange(bounds[j], bounds[j + 1]) for j in range(parts)]


def _merge_stats(stats: list[LearnerStats]) -> LearnerStats:
    """Token-weighted means across learner shards; loss and grad norm are already global; token counts
    add up; time and memory are the slowest and largest shard's."""
    tok = max(sum(s.tokens for s in stats), 1)
    merged = {f.name: sum(getattr(s, f.name) * s.tokens for s in stats) / tok for f in fields(LearnerStats)}
    merged.update(
        loss=sum(s.loss for s in stats),
        grad_norm=stats[0].grad_norm,
        nonfinite_skipped=stats[0].nonfinite_skipped,
        tokens=sum(s.tokens for s in stats),
        seconds=max(s.seconds for s in stats),
        fwd_tokens=sum(s.fwd_tokens for s in stats),
        peak_rss_gib=max(s.peak_rss_gib for s in stats),
    )
    return LearnerStats(**merged)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]

"""Run reward plugins in a pool of worker processes.

Why processes: math-verify can hang on adversarial LaTeX, and its `signal.alarm` timeouts work only on
a process's main thread, which the driver (running Ray threads) cannot offer. Each worker runs a plugin
call on its main thread; a call that still hangs past `timeout_s` gets its pool killed and recreated.
The pool uses the "spawn" context because forking a process that runs threads is unsafe.

A batch is split into chunks that keep every group (`group_id_B`) whole, since rewards may be
group-relative; each (plugin, chunk) pair is one task. Combination: `score_B = sum_k weight_k *
score_k`, where a NaN score ("not applicable") counts as 0.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import importlib.util
import logging
import math
import multiprocessing
import os
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from lenrl.algos.filters import GROUP_FILTERS, FilterInput
from lenrl.errors import LenrlError
from lenrl.reward import REWARDS, RewardInput, RewardOutput, call_reward, nan_to_zero, nanmean

log = logging.getLogger(__name__)
START_TIMEOUT_S = 300.0  # a worker that cannot import torch and the plugins in this long is stuck


class RewardSpecLike(Protocol):
    """What the runner reads of a spec (lenrl.config.RewardSpec fits)."""

    name: str
    weight: float
    params: dict[str, Any]


@dataclass(frozen=True)
class ScoredBatch:
    """score_B: weighted sum (NaN counted as 0); correct_B: from the first plugin that gives one,
    else score_B > 0; metrics: reward/<name>, reward/<name>/<part> (nan-means), reward/errors."""

    score_B: torch.Tensor
    correct_B: torch.Tensor
    metrics: dict[str, float]


def canonical_ref(name: str) -> str:
    """A file reference `path.py:fn` becomes absolute so that workers and the driver agree on it."""
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        path, fn = name.rsplit(":", 1)
        return f"{os.path.abspath(path)}:{fn}"
    return name


def metric_label(name: str) -> str:
    """`reward/<label>` in metrics: the function name for `module:fn` / `file.py:fn` references."""
    return name.rsplit(":", 1)[-1]


def resolve_reward(ref: str) -> Any:
    """The function for a registry name, `package.module:function` or `path/to/file.py:function`.

    Loaded functions are registered under their reference, so `REWARDS.check_params` applies to them.
    """
    import rewards  # noqa: F401  (registers the built-ins)

    if ref in REWARDS.names() or ":" not in ref:
        return REWARDS.get(ref)
    target, fn_name = ref.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            if not os.path.isfile(target):
                raise FileNotFoundError(f"no file {target}")
            mod_name = "_lenrl_reward_" + hashlib.sha1(target.encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(mod_name, target)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, fn_name)
    except (ImportError, OSError, AttributeError) as e:
        raise LenrlError(f"cannot load reward {ref!r}: {type(e).__name__}: {e}") from None
    REWARDS.register(ref)(fn)
    return fn


def _init_worker() -> None:
    # Plugins are light Python; one torch thread per worker avoids oversubscribing the CPU cores.
    torch.set_num_threads(1)


def _warmup(refs: list[str]) -> None:
    for ref in refs:
        resolve_reward(ref)


def _run_chunk(ref: str, params: dict[str, Any], payload: bytes) -> tuple[list[float], Any, dict]:
    """Worker side: score one chunk. Tensors travel pickled by value (plain `pickle`), not through
    torch's shared-memory reducers, whose segments would leak when a hung pool is killed."""
    x: RewardInput = pickle.loads(payload)
    out = call_reward(resolve_reward(ref), x, params)
    if not isinstance(out, RewardOutput):
        raise TypeError(f"returned {type(out).__name__}, expected RewardOutput")
    n = len(x)
    tensors = {"score_B": out.score_B, "correct_B": out.correct_B, **out.parts}
    for key, t in tensors.items():
        if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,)):
            raise ValueError(f"{key} is {t!r:.80}, expected a tensor of shape ({n},)")
    correct = None if out.correct_B is None else out.correct_B.bool().tolist()
    parts = {k: v.double().tolist() for k, v in out.parts.items()}
    return out.score_B.double().tolist(), correct, parts


def group_chunks(group_id_B: torch.Tensor, n_chunks: int) -> list[list[int]]:
    """Sample indices split into at most `n_chunks` lists of whole groups, balanced by sample count."""
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_id_B.tolist()):
        groups.setdefault(g, []).append(i)
    n_chunks = max(1, min(n_chunks, len(groups)))
    target = len(group_id_B) / n_chunks
    chunks: list[list[int]] = [[]]
    for idx in groups.values():
        if chunks[-1] and len(chunks[-1]) + len(idx) / 2 > target and len(chunks) < n_chunks:
            chunks.append([])
        chunks[-1].extend(idx)
    return chunks


def _bind_groups(spec: RewardSpecLike) -> Any:
    """The spec's `groups:` selector bound to its params, or None when it keeps every group."""
    groups = getattr(spec, "groups", None)
    if groups is None or groups.name == "none":
        return None
    return GROUP_FILTERS.bind(groups.name, groups.params, where=f"reward {spec.name!r} groups")


class RewardRunner:
    """Scores rollout batches with weighted reward plugins run in `num_workers` spawned processes.

    `timeout_s` is per chunk: one `score()` call waits `timeout_s` times the number of rounds its tasks
    need on `num_workers` workers. `on_error="raise"` turns a failed or timed-out chunk into a
    LenrlError; `on_error="zero"` scores it 0 (NaN for that plugin's metrics) and counts it in
    `reward/errors`.
    """

    def __init__(
        self, specs: Sequence[RewardSpecLike], num_workers: int = 2, timeout_s: float = 30.0, on_error: str = "raise"
    ):
        if on_error not in ("raise", "zero"):
            raise LenrlError(f"reward on_error must be 'raise' or 'zero', got {on_error!r}")
        if not specs:
            raise LenrlError("no reward configured")
        labels = [metric_label(s.name) for s in specs]
        if len(set(labels)) != len(labels):
            raise LenrlError(f"reward metric names must be unique, got {labels}")
        self.specs = list(specs)
        self.refs = [canonical_ref(s.name) for s in self.specs]
        for spec, ref in zip(self.specs, self.refs, strict=False):
            resolve_reward(ref)
            REWARDS.check_params(ref, dict(spec.params), where=f"reward {spec.name!r}")
        self.selectors = [_bind_groups(s) for s in self.specs]
        self.num_workers, self.timeout_s, self.on_error = max(1, num_workers), timeout_s, on_error
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        # Workers start (and import torch and the plugins) before any timed call, so start-up time
        # never counts against `timeout_s`; one warm-up task per worker makes all of them spawn.
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            pool = cf.ProcessPoolExecutor(self.num_workers, mp_context=ctx, initializer=_init_worker)
            try:
                for f in [pool.submit(_warmup, self.refs) for _ in range(self.num_workers)]:
                    f.result(timeout=START_TIMEOUT_S)
            except Exception as e:
                self._kill(pool)
                msg = " ".join(f"{type(e).__name__}: {e}".split())
                raise LenrlError(f"reward workers failed to start: {msg}") from None
            self._pool = pool
        return self._pool

    @staticmethod
    def _kill(pool: cf.ProcessPoolExecutor) -> None:
        # A hung worker never returns, so shutdown() alone would wait forever: kill the processes.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for p in procs:
            p.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)

    def _reset_pool(self) -> None:
        if self._pool is not None:
            self._kill(self._pool)
            self._pool = None

    def score(self, x: RewardInput) -> ScoredBatch:
        n = len(x)
        chunks = group_chunks(x.group_id_B, self.num_workers) if n else []
        pool = self._get_pool() if n else None
        payloads = [pickle.dumps(x.select(idx)) for idx in chunks]
        tasks = [
            (k, c, pool.submit(_run_chunk, ref, dict(spec.params), payloads[c]))
            for k, (spec, ref) in enumerate(zip(self.specs, self.refs, strict=False))
            for c in range(len(chunks))
        ]
        rounds = math.ceil(len(tasks) / self.num_workers)
        _, not_done = cf.wait([t[2] for t in tasks], timeout=self.timeout_s * rounds)
        if not_done:
            self._reset_pool()
        results: dict[tuple[int, int], Any] = {}
        errors = 0  # failed (plugin, chunk) tasks under on_error="zero"
        for k, c, fut in tasks:
            err = self._task_error(fut, not_done)
            if err is None:
                results[k, c] = fut.result()
                continue
            idx = chunks[c][0]
            msg = (
                f"reward {self.specs[k].name!r} {err} on the chunk starting at sample {idx} "
                f"(group {int(x.group_id_B[idx])})"
            )
            msg = " ".join(msg.split())  # one line, even when the plugin's message has several
            if self.on_error == "raise":
                raise LenrlError(msg)
            log.warning("%s; scored 0", msg)
            errors += 1
        return self._combine(x, chunks, results, errors)

    def _task_error(self, fut: cf.Future, not_done: set) -> str | None:
        if fut in not_done:
            return f"timed out after {self.timeout_s:g}s"
        exc = fut.exception()
        if exc is None:
            return None
        if isinstance(exc, cf.BrokenExecutor):  # a worker died: later calls need a fresh pool
            self._reset_pool()
        return f"failed: {type(exc).__name__}: {exc}"

    def _combine(self, x: RewardInput, chunks: list[list[int]], results: dict, errors: int) -> ScoredBatch:
        """Rewards in config order; `gate` then zeroes a reward where the answer is wrong ("correct") or
        right ("wrong"), judged by the first reward that returns correct_B (so gating never depends on
        a length term's own view of correctness)."""
        n = len(x)
        correct_B: torch.Tensor | None = None
        metrics: dict[str, float] = {"reward/errors": float(errors)}
        scores: list[torch.Tensor] = []
        for k, spec in enumerate(self.specs):
            s_B, c_B, parts = self._gather(n, k, chunks, results)
            scores.append(s_B)
            if c_B is not None and correct_B is None:
                correct_B = c_B
            label = metric_label(spec.name)
            metrics[f"reward/{label}"] = nanmean(s_B)
            metrics.update({f"reward/{label}/{p}": nanmean(v) for p, v in parts.items()})
        score_B = torch.zeros(n, dtype=torch.float32)
        for spec, s_B, select in zip(self.specs, scores, self.selectors, strict=False):
            gate = getattr(spec, "gate", "none")
            if (gate != "none" or select is not None) and correct_B is None:
                raise LenrlError(f"reward {spec.name!r} has a gate or groups selector but no reward returns correct_B")
            if gate != "none":
                s_B = torch.where(correct_B if gate == "correct" else ~correct_B, s_B, 0.0)
            if select is not None:  # batch-level: e.g. GRPO-λ's top-λ groups by correctness ratio
                keep_B = select(FilterInput(score_B, correct_B, x.group_id_B))
                s_B = torch.where(keep_B, s_B, 0.0)
                metrics[f"reward/{metric_label(spec.name)}/groups_frac"] = (
                    float(keep_B.double().mean()) if n else math.nan
                )
            score_B += (spec.weight * nan_to_zero(s_B)).float()
        return ScoredBatch(score_B, score_B > 0 if correct_B is None else correct_B, metrics)

    def _gather(self, n: int, k: int, chunks: list[list[int]], results: dict):
        """Plugin k's per-sample score (NaN where its chunk failed), correct_B or None, and parts."""
        s_B = torch.full((n,), math.nan, dtype=torch.float64)
        c_B = torch.zeros(n, dtype=torch.bool)
        parts: dict[str, torch.Tensor] = {}
        gave_correct = False
        for c, idx in enumerate(chunks):
            if (k, c) not in results:
                continue  # failed chunk under on_error="zero": NaN here, 0 in score_B
            s, corr, pts = results[k, c]
            t = torch.tensor(idx, dtype=torch.long)
            s_B[t] = torch.tensor(s, dtype=torch.float64)
            if corr is not None:
                gave_correct = True
                c_B[t] = torch.tensor(corr, dtype=torch.bool)
            for name, v in pts.items():
                parts.setdefault(name, torch.full((n,), math.nan, dtype=torch.float64))
                parts[name][t] = torch.tensor(v, dtype=torch.float64)
        return s_B, (c_B if gave_correct else None), parts

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> RewardRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

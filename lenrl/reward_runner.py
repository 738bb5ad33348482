"""Grade every sample once, then run the reward plugins, in a pool of worker processes.

Correctness is decided ONCE per sample by the run's grader (`grader:` in the config: a registered name
such as `math` with `fallback`, or `module:fn` / `file.py:fn` as for rewards; thinking mode from
`model.thinking`), before any reward runs, and reaches every reward as
`RewardInput.correct_B`; gating (`gate: correct`), the group selectors and `ScoredBatch.correct_B` use the
same verdict, so no two parts of a run can disagree on which answers are right.

Both run in `lenrl.reward_pool.TaskPool` workers (main thread, so math-verify's signal timeouts work), each
task under its own timeout: grading is one task per sample, so one pathological answer (a power tower,
thousands of nested braces) times out alone: it is scored wrong, counted in `reward/timeouts`, and the
step or evaluation goes on. A grader that raises on a sample scores it wrong too (`reward/errors`).

Rewards: a batch is split into chunks that keep every group (`group_id_B`) whole, since rewards may be
group-relative; each (plugin, chunk) pair is one task. Combination: `score_B = sum_k weight_k *
score_k`, where a NaN score ("not applicable") counts as 0.

A reward chunk has ONE timeout (`timeout_s`, `train.reward_timeout_s` in training), so a plugin that does
slow per-sample work must bound it per sample: the built-ins that call math-verify (`format` with
`sympy=True`, `surrogate`) parse each answer under `rewards.format.SYMPY_PARSE_TIMEOUT_S` (1 s), and a parse
that runs out of time scores only that sample as unparsable. A chunk holds about batch / `num_workers`
samples, so even if every answer in it were pathological the chunk needs at most chunk size x 1 s per such
plugin (32 s for 64 samples on 2 workers) on top of its ordinary work, which stays within the default
`train.reward_timeout_s` of 60 s; raise the timeout (or the workers) with larger batches, or under
`reward_on_error: raise` a chunk full of pathological answers can still stop the step.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import math
import os
import pickle
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from lenrl.algos.filters import GROUP_FILTERS, FilterInput
from lenrl.config import FnSpec
from lenrl.config_checks import check_grader
from lenrl.errors import LenrlError
from lenrl.registry import Registry
from lenrl.reward import GRADERS, REWARDS, RewardInput, RewardOutput, call_reward, graded, nan_to_zero, nanmean
from lenrl.reward_pool import TaskPool, TaskResult

log = logging.getLogger(__name__)
COUNT_METRICS = ("reward/timeouts", "reward/errors")  # sample counts: summed, never averaged, across draws


class RewardSpecLike(Protocol):
    """What the runner reads of a spec (lenrl.config.RewardSpec fits)."""

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def params(self) -> dict[str, Any]: ...


class GraderSpecLike(Protocol):
    """What the runner reads of the grader spec (lenrl.config.FnSpec fits)."""

    @property
    def name(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ScoredBatch:
    """score_B: weighted sum (NaN counted as 0); correct_B: the grader's verdict (bool); metrics:
    reward/<name>, reward/<name>/<part> (nan-means), reward/timeouts (samples whose grading timed out),
    reward/errors (samples whose grader raised, plus failed reward chunks under on_error="zero")."""

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
    return resolve_ref(ref, REWARDS)


def resolve_grader(ref: str) -> Any:
    return resolve_ref(ref, GRADERS)


def resolve_ref(ref: str, registry: Registry) -> Any:
    """The function for a registry name, `package.module:function` or `path/to/file.py:function`.

    Loaded functions are registered under their reference, so `registry.check_params` applies to them.
    """
    import rewards  # noqa: F401  (registers the built-ins)

    if ref in registry.names() or ":" not in ref:
        return registry.get(ref)
    target, fn_name = ref.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            if not os.path.isfile(target):
                raise FileNotFoundError(f"no file {target}")
            mod_name = "_lenrl_reward_" + hashlib.sha1(target.encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(mod_name, target)
            if spec is None or spec.loader is None:
                raise ImportError(f"{target} is not a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, fn_name)
    except Exception as e:  # anything the user's module raises at import (SyntaxError included): one line
        at = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == target]
        where = f" ({target}:{at[-1]})" if at and not isinstance(e, SyntaxError) else ""
        msg = " ".join(str(e).split())
        raise LenrlError(f"cannot load {registry.kind} {ref!r}{where}: {type(e).__name__}: {msg}") from None
    if not callable(fn):
        raise LenrlError(f"cannot load {registry.kind} {ref!r}: {fn_name} is a {type(fn).__name__}, not a function")
    registry.register(ref)(fn)
    return fn


WARM_COMPLETION, WARM_ANSWER = "</think> so \\boxed{\\frac{1}{2}}", "0.5"  # exercises math-verify's parser


def _warmup(refs: list[str], grader: str, grader_params: dict[str, Any], thinking: bool) -> None:
    """Worker start-up, before any timed task: plugins loaded, and the grader run once, so imports and
    math-verify's first parse (seconds under load) never count against a sample's timeout."""
    torch.set_num_threads(1)  # plugins are light Python; one thread per worker avoids oversubscription
    for ref in refs:
        resolve_reward(ref)
    try:
        resolve_grader(grader)(WARM_COMPLETION, WARM_ANSWER, thinking=thinking, **grader_params)
    except Exception:  # only a warm-up: a grader that fails on real samples is reported per sample
        log.debug("grader warm-up failed", exc_info=True)


def _grade(grader: str, params: dict[str, Any], thinking: bool, completion: str, answer: str) -> bool:
    """Worker side: one sample's verdict."""
    return bool(resolve_grader(grader)(completion, answer, thinking=thinking, **params))


def _run_chunk(ref: str, params: dict[str, Any], payload: bytes) -> tuple[list[float], dict]:
    """Worker side: score one chunk (a pickled RewardInput, correct_B set)."""
    x: RewardInput = pickle.loads(payload)
    out = call_reward(resolve_reward(ref), x, params)
    if not isinstance(out, RewardOutput):
        raise TypeError(f"returned {type(out).__name__}, expected RewardOutput")
    n = len(x)
    for key, t in {"score_B": out.score_B, **out.parts}.items():
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,):
            raise ValueError(f"{key} is {t!r:.80}, expected a tensor of shape ({n},)")
    return out.score_B.double().tolist(), {k: v.double().tolist() for k, v in out.parts.items()}


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
    """Grades with `grader` (default: `math`, its default params) in `thinking` mode, then scores with
    weighted reward plugins, in `num_workers` spawned processes.

    `timeout_s` is per task: one sample's grading, or one reward plugin on one chunk, counted from the
    moment a warm worker takes it. A grading that times out or raises scores that sample wrong and the
    batch goes on, whatever `on_error`. For reward chunks, `on_error="raise"` turns a failed or timed-out
    chunk into a LenrlError; `on_error="zero"` scores it 0 (NaN for that plugin's metrics) and counts it
    in `reward/errors`.
    """

    def __init__(
        self,
        specs: Sequence[RewardSpecLike],
        grader: GraderSpecLike | None = None,
        thinking: bool = False,
        num_workers: int = 2,
        timeout_s: float = 30.0,
        on_error: str = "raise",
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
        for spec, ref in zip(self.specs, self.refs, strict=True):
            resolve_reward(ref)
            REWARDS.check_params(ref, dict(spec.params), where=f"reward {spec.name!r}")
        grader = grader if grader is not None else FnSpec("math")
        self.grader, self.grader_params = canonical_ref(grader.name), dict(grader.params)
        self.thinking = bool(thinking)
        # the same check as at config load: a bad name, parameter or value is a LenrlError now, not every
        # sample silently wrong later
        check_grader(grader, "grader", thinking=self.thinking)
        self.selectors = [_bind_groups(s) for s in self.specs]
        self.timeout_s, self.on_error = timeout_s, on_error
        self.num_workers = max(1, num_workers)
        self._pool: TaskPool | None = None

    def _get_pool(self) -> TaskPool:
        if self._pool is None:
            args = (self.refs, self.grader, self.grader_params, self.thinking)
            self._pool = TaskPool(self.num_workers, _warmup, args)
        return self._pool

    def score(self, x: RewardInput) -> ScoredBatch:
        n = len(x)
        metrics: dict[str, float] = dict.fromkeys(COUNT_METRICS, 0.0)
        correct_B = self._grade(x, metrics) if n else torch.zeros(0, dtype=torch.bool)
        x = replace(x, correct_B=correct_B, thinking=self.thinking)
        chunks = group_chunks(x.group_id_B, self.num_workers) if n else []
        payloads = [pickle.dumps(x.select(idx)) for idx in chunks]
        tasks = [(k, c) for k in range(len(self.specs)) for c in range(len(chunks))]
        args = [(self.refs[k], dict(self.specs[k].params), payloads[c]) for k, c in tasks]
        outcomes = self._get_pool().run(_run_chunk, args, self.timeout_s) if tasks else []
        results: dict[tuple[int, int], Any] = {}
        for (k, c), res in zip(tasks, outcomes, strict=True):
            if res.error is None:
                results[k, c] = res.value
                continue
            idx = chunks[c][0]
            msg = (
                f"reward {self.specs[k].name!r} {res.error} on the chunk starting at sample {idx} "
                f"(group {int(x.group_id_B[idx])})"
            )
            msg = " ".join(msg.split())  # one line, even when the plugin's message has several
            if self.on_error == "raise":
                raise LenrlError(msg)
            log.warning("%s; scored 0", msg)
            metrics["reward/errors"] += 1
        return self._combine(x, chunks, results, metrics)

    def _grade(self, x: RewardInput, metrics: dict[str, float]) -> torch.Tensor:
        """One grader call per sample, each under `timeout_s`; a timeout or an error is a wrong answer."""
        args = [
            (self.grader, self.grader_params, self.thinking, text, gold)
            for text, gold in zip(x.completions, x.answers, strict=True)
        ]
        outcomes: list[TaskResult] = self._get_pool().run(_grade, args, self.timeout_s)
        for i, res in enumerate(outcomes):
            if res.error is not None:
                metrics["reward/timeouts" if res.timed_out else "reward/errors"] += 1
                log.warning(
                    "grader %r %s on sample %d (group %d); scored wrong",
                    self.grader,
                    res.error[:200],
                    i,
                    int(x.group_id_B[i]),
                )
        return torch.tensor([bool(r.value) if r.error is None else False for r in outcomes], dtype=torch.bool)

    def _combine(self, x: RewardInput, chunks: list[list[int]], results: dict, metrics: dict) -> ScoredBatch:
        """Rewards in config order; `gate` then zeroes a reward where the grader judged the answer wrong
        ("correct") or right ("wrong"); a `groups` selector keeps a reward on the groups it picks."""
        n = len(x)
        correct_B = graded(x)
        scores: list[torch.Tensor] = []
        for k, spec in enumerate(self.specs):
            s_B, parts = self._gather(n, k, chunks, results)
            scores.append(s_B)
            label = metric_label(spec.name)
            metrics[f"reward/{label}"] = nanmean(s_B)
            metrics.update({f"reward/{label}/{p}": nanmean(v) for p, v in parts.items()})
        score_B = torch.zeros(n, dtype=torch.float32)
        for spec, s_B, select in zip(self.specs, scores, self.selectors, strict=True):
            gate = getattr(spec, "gate", "none")
            if gate != "none":
                s_B = torch.where(correct_B if gate == "correct" else ~correct_B, s_B, 0.0)
            if select is not None:  # batch-level: e.g. GRPO-λ's top-λ groups by correctness ratio
                keep_B = select(FilterInput(score_B, correct_B, x.group_id_B))
                s_B = torch.where(keep_B, s_B, 0.0)
                metrics[f"reward/{metric_label(spec.name)}/groups_frac"] = (
                    float(keep_B.double().mean()) if n else math.nan
                )
            score_B += (spec.weight * nan_to_zero(s_B)).float()
        return ScoredBatch(score_B, correct_B, metrics)

    def _gather(
        self, n: int, k: int, chunks: list[list[int]], results: dict
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Plugin k's per-sample score (NaN where its chunk failed) and parts."""
        s_B = torch.full((n,), math.nan, dtype=torch.float64)
        parts: dict[str, torch.Tensor] = {}
        for c, idx in enumerate(chunks):
            if (k, c) not in results:
                continue  # failed chunk under on_error="zero": NaN here, 0 in score_B
            s, pts = results[k, c]
            t = torch.tensor(idx, dtype=torch.long)
            s_B[t] = torch.tensor(s, dtype=torch.float64)
            for name, v in pts.items():
                parts.setdefault(name, torch.full((n,), math.nan, dtype=torch.float64))
                parts[name][t] = torch.tensor(v, dtype=torch.float64)
        return s_B, parts

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> RewardRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

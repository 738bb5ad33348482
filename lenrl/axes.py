"""The configurable axes of lenrl in one table, `AXES`: the config checks (lenrl/config_checks.py), the
catalog (`lenrl algos`, the README table; lenrl/catalog.py) and the load-time probes all derive from it.

An axis is a place in the config that names a registered function (`{name, params}`): where it lives,
which registry holds its names, whether it compares the responses of a group, and a probe. A probe calls
the configured function once on a toy batch, so that a parameter *value* the function rejects (it raises
`ValueError`, the registries' contract) fails at load, not at step 1 after Ray and vLLM have started; any
other exception fails there too, as one line naming the exception (`lenrl.config_checks.check_spec`, the one
check every spec goes through), except a reward's (`probe_reward`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lenrl.config import Config, FnSpec
from lenrl.errors import LenrlError

if TYPE_CHECKING:
    from lenrl.reward import RewardInput

# (cfg, spec, fn): call the registered function `fn` with `spec.params` on a toy batch; raise ValueError
Probe = Callable[[Config, Any, Callable[..., Any]], None]


@dataclass(frozen=True)
class Axis:
    label: str
    """name of the axis in the catalog"""
    path: str
    """dotted config path of its `{name, params}` specs; `[]` expands a list (`rewards[].groups`)"""
    registry_ref: str
    """`module:ATTR` of its Registry, imported when first needed (the registries import torch)"""
    plugins: str | None = None
    """a module whose import registers the built-ins (`rewards` registers rewards and graders)"""
    group_relative: bool = False
    """every name but `none` compares the responses of a group, so training needs rollout.n >= 2"""
    probe: Probe | None = None
    loads_refs: bool = False
    """its names may also be `module:fn` / `file.py:fn` references to user plugins (rewards, graders)"""

    def registry(self) -> Any:  # -> lenrl.registry.Registry
        if self.plugins:
            importlib.import_module(self.plugins)
        module, attr = self.registry_ref.split(":")
        return getattr(importlib.import_module(module), attr)

    def key(self, name: str) -> str:
        """The registry key of `name`: a built-in name as it is; with `loads_refs`, a `module:fn` /
        `file.py:fn` reference made canonical (absolute path) and loaded into the registry (LenrlError if
        it cannot be)."""
        if not self.loads_refs:
            return name
        from lenrl.reward_runner import canonical_ref, resolve_ref

        ref = canonical_ref(name)
        resolve_ref(ref, self.registry())
        return ref


def specs_at(cfg: Config, path: str) -> list[tuple[str, Any]]:
    """The specs at `path` with their display location: `rewards[].groups` -> [("rewards[0].groups", spec)...]."""
    found: list[tuple[str, Any]] = [("", cfg)]
    for part in path.split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        step = []
        for where, node in found:
            value, at = getattr(node, name), f"{where}.{name}" if where else name
            step += [(f"{at}[{i}]", v) for i, v in enumerate(value)] if is_list else [(at, value)]
        found = step
    return found


def step_budgets(cfg: Config) -> list[int]:
    """B(t) for every training step t = 1..train.steps (the budget axis is checked before anything reads it)."""
    from lenrl.algos.budgets import BUDGET_SCHEDULES, budget_at

    spec = cfg.rollout.budget
    schedule = BUDGET_SCHEDULES.bind(spec.name, spec.params)
    return [budget_at(cfg, schedule, t) for t in range(1, cfg.train.steps + 1)]


# ---------------------------------------------------------------- probes (toy batches of 2 responses)


def _advantage_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    from lenrl.algos import AdvantageInput

    zeros = torch.zeros(2, dtype=torch.long)
    fn(AdvantageInput(torch.tensor([0.0, 1.0]), zeros, torch.ones(2, dtype=torch.long), zeros.bool()), **spec.params)


def _policy_loss_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    from lenrl.algos import LossInput

    x = torch.zeros(2, 1)
    fn(LossInput(x, x, torch.ones(2), torch.ones(2, 1, dtype=torch.bool)), **spec.params)


def _group_loss_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    """Also: a group loss reshapes its micro-batch by group (DRPO's `uid` reshape, docs/algorithms.md
    §2.6, §12.4), so micro-batches must hold whole groups."""
    import torch

    from lenrl.algos import GroupLossInput

    mbs, n = cfg.train.micro_batch_size, cfg.rollout.n
    if mbs % n:
        raise LenrlError(
            f"config train.micro_batch_size: {mbs} splits groups of rollout.n={n}; the group loss {spec.name!r} "
            f"needs whole groups per micro-batch (use a multiple of {n})"
        )
    x, mask = torch.zeros(2, 1), torch.ones(2, 1, dtype=torch.bool)
    ones, zeros = torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    x_in = GroupLossInput(x, x, mask, torch.tensor([True, False]), ones, zeros)
    fn(x_in, **spec.params, num_groups=1, num_tokens=2, max_len=2)


def _aggregation_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    x = torch.zeros(2, 1)
    fn(x, torch.ones(2, 1, dtype=torch.bool), **spec.params, num_tokens=2, num_seqs=2, max_len=cfg.rollout.max_tokens)


def _kl_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    fn(torch.zeros(2, 1), torch.zeros(2, 1), **spec.params)


def _filter_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    from lenrl.algos import FilterInput

    fn(FilterInput(torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.long)), **spec.params)


def _budget_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    """Every step's budget must be a positive token count within rollout.max_tokens (the engine's cap)."""
    for step, b in enumerate(step_budgets(cfg), start=1):
        if not isinstance(b, int) or not 0 < b <= cfg.rollout.max_tokens:
            raise ValueError(f"step {step} budget {b!r} is not in [1, rollout.max_tokens={cfg.rollout.max_tokens}]")


def _question_budget_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    import torch

    fn(**spec.params, budget=2, correct_B=torch.tensor([True, False]), len_B=torch.ones(2), max_tokens=2)


def _grader_probe(cfg: Config, spec: FnSpec, fn: Callable[..., Any]) -> None:
    probe_grader(fn, spec.params, thinking=cfg.model.thinking)


def _reward_probe(cfg: Config, spec: Any, fn: Callable[..., Any]) -> None:
    probe_reward(fn, spec.params, budgets=step_budgets(cfg), thinking=cfg.model.thinking)


def probe_grader(fn: Callable[..., Any], params: dict[str, Any], *, thinking: bool) -> None:
    """Grade one answer that matches its reference exactly (no call into math-verify, which is slow to import).
    A grader sees no dataset columns, so one that raises here would fail on every sample: refused at load."""
    fn("<think>1+0</think>\\boxed{1}", "1", **params, thinking=thinking)


def probe_reward(fn: Callable[..., Any], params: dict[str, Any], *, budgets: list[int], thinking: bool) -> None:
    """Score a toy group of two responses with the reward's parameters (ValueError: a bad value). Any
    other exception is left to the run: a plugin may read dataset columns the toy batch does not have."""
    from lenrl.reward import call_reward

    try:
        call_reward(fn, probe_reward_input(params, budgets, thinking), params)
    except ValueError:
        raise
    except Exception:  # noqa: S110  (not a parameter error; the run itself reports it, per sample)
        pass


def probe_reward_input(params: dict[str, Any], budgets: list[int], thinking: bool) -> RewardInput:
    """A group of two one-token responses to "1": one boxed and right, one unboxed and cut at its budget,
    under the largest and the smallest budget of the run. A string parameter may name a meta column
    (`target_key`, `budget_key`): each such value is a column holding the row's budget. Built from
    RewardInput's own field list, so fields that a row does not need to fill can come and go."""
    import torch

    from lenrl.reward import RewardInput

    hi, lo = max(budgets), min(budgets)
    columns = [v for v in params.values() if isinstance(v, str)]
    values: dict[str, Any] = {
        "prompts": ["1+0=?", "1+0=?"],
        "completions": ["<think>1+0</think>\\boxed{1}", "1"],
        "completion_ids": [[16], [16]],
        "answers": ["1", "1"],
        "meta": [dict.fromkeys(columns, hi), dict.fromkeys(columns, lo)],
        "response_len_B": torch.ones(2, dtype=torch.long),
        "think_len_B": torch.tensor([1, 0]),
        "truncated_B": torch.tensor([False, True]),
        "group_id_B": torch.zeros(2, dtype=torch.long),
        "budget_B": torch.tensor([hi, lo]),
        "correct_B": torch.tensor([True, False]),
        "thinking": thinking,
    }
    names = {f.name for f in dataclasses.fields(RewardInput)}
    return RewardInput(**{k: v for k, v in values.items() if k in names})


# ---------------------------------------------------------------- the table

AXES: tuple[Axis, ...] = (
    Axis("advantage", "algo.advantage", "lenrl.algos:ADVANTAGES", group_relative=True, probe=_advantage_probe),
    Axis("policy loss", "algo.loss", "lenrl.algos:POLICY_LOSSES", probe=_policy_loss_probe),
    Axis("group loss", "algo.loss", "lenrl.algos:GROUP_LOSSES", group_relative=True, probe=_group_loss_probe),
    Axis("aggregation", "algo.aggregation", "lenrl.algos:AGGREGATIONS", probe=_aggregation_probe),
    Axis("KL", "algo.kl", "lenrl.algos:KL_ESTIMATORS", probe=_kl_probe),
    Axis("group filter", "algo.filter", "lenrl.algos:GROUP_FILTERS", group_relative=True, probe=_filter_probe),
    Axis("budget schedule", "rollout.budget", "lenrl.algos:BUDGET_SCHEDULES", probe=_budget_probe),
    Axis("question budget", "rollout.question_budget", "lenrl.algos:QUESTION_BUDGETS", probe=_question_budget_probe),
    Axis("grader", "grader", "lenrl.reward:GRADERS", plugins="rewards", probe=_grader_probe, loads_refs=True),
    Axis("reward", "rewards[]", "lenrl.reward:REWARDS", plugins="rewards", probe=_reward_probe, loads_refs=True),
    Axis("group filter", "rewards[].groups", "lenrl.algos:GROUP_FILTERS", group_relative=True, probe=_filter_probe),
)

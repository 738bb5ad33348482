"""Config checks that need the registries: names and parameters bound to the registered functions'
signatures, every step's budget, and parameter values probed on a toy batch. Run by `load_config`,
before Ray starts, so that a bad config never costs a cluster start-up."""

from __future__ import annotations

import typing

from lenrl.config import Config, _fail
from lenrl.errors import LenrlError


def check_registries(cfg: Config) -> None:
    """Bind every registry name and its params to the registered function's signature."""
    from lenrl.algos import ADVANTAGES, AGGREGATIONS, BUDGET_SCHEDULES, GROUP_FILTERS, KL_ESTIMATORS, POLICY_LOSSES

    for reg, spec, where in (
        (ADVANTAGES, cfg.algo.advantage, "algo.advantage"),
        (POLICY_LOSSES, cfg.algo.loss, "algo.loss"),
        (AGGREGATIONS, cfg.algo.aggregation, "algo.aggregation"),
        (KL_ESTIMATORS, cfg.algo.kl, "algo.kl"),
        (GROUP_FILTERS, cfg.algo.filter, "algo.filter"),
        (BUDGET_SCHEDULES, cfg.rollout.budget, "rollout.budget"),
    ):
        reg.check_params(spec.name, spec.params, where)
    _check_budgets(cfg, BUDGET_SCHEDULES.bind(cfg.rollout.budget.name, cfg.rollout.budget.params))
    _probe_values(cfg)
    from lenrl.reward import REWARDS
    from lenrl.reward_runner import canonical_ref, resolve_reward

    for i, r in enumerate(cfg.rewards):
        ref = canonical_ref(r.name)
        try:
            resolve_reward(ref)
        except LenrlError as e:
            raise LenrlError(f"config rewards[{i}].name: {e}") from None
        REWARDS.check_params(ref, r.params, where=f"rewards[{i}]")


def budget_at(cfg: Config, schedule: typing.Callable[..., int], step: int) -> int:
    """The response budget in force at training step `step` (1-based)."""
    return schedule(step=step - 1, total_steps=cfg.train.steps, max_tokens=cfg.rollout.max_tokens)


def _check_budgets(cfg: Config, schedule: typing.Callable[..., int]) -> None:
    """Every step's budget must be a positive token count within rollout.max_tokens (the engine's cap)."""
    for step in range(1, cfg.train.steps + 1):
        try:
            b = budget_at(cfg, schedule, step)
        except ValueError as e:
            _fail("rollout.budget", str(e))
        if not isinstance(b, int) or not 0 < b <= cfg.rollout.max_tokens:
            _fail("rollout.budget", f"step {step} budget {b!r} is not in [1, rollout.max_tokens={cfg.rollout.max_tokens}]")


def _probe_values(cfg: Config) -> None:
    """Call each configured tensor function once on a 2-response toy batch, so that parameter values the
    function rejects (clip bounds outside (0, 1], a negative eps...) fail at load, not at step 1."""
    import torch

    from lenrl.algos import (
        ADVANTAGES, AGGREGATIONS, GROUP_FILTERS, KL_ESTIMATORS, POLICY_LOSSES, AdvantageInput, FilterInput, LossInput,
    )  # fmt: skip

    a = cfg.algo
    x2 = torch.zeros(2, 1)
    mask = torch.ones(2, 1, dtype=torch.bool)
    probes = [
        ("algo.advantage", ADVANTAGES, a.advantage,
         (AdvantageInput(torch.tensor([0.0, 1.0]), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long),
                         torch.zeros(2, dtype=torch.bool)),), {}),
        ("algo.loss", POLICY_LOSSES, a.loss, (LossInput(x2, x2, torch.ones(2), mask),), {}),
        ("algo.aggregation", AGGREGATIONS, a.aggregation, (x2, mask),
         {"num_tokens": 2, "num_seqs": 2, "max_len": cfg.rollout.max_tokens}),
        ("algo.kl", KL_ESTIMATORS, a.kl, (x2, x2), {}),
        ("algo.filter", GROUP_FILTERS, a.filter,
         (FilterInput(torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.long)),), {}),
    ]  # fmt: skip
    for where, reg, spec, args, kwargs in probes:
        try:
            reg.bind(spec.name, spec.params)(*args, **kwargs)
        except ValueError as e:
            _fail(where, str(e))

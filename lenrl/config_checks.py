"""Config checks that need the registries: names and parameters bound to the registered functions'
signatures, every step's budget, and parameter values probed on a toy batch. Run by `load_config`,
before Ray starts, so that a bad config never costs a cluster start-up."""

from __future__ import annotations

import typing

from lenrl.config import Config, _fail
from lenrl.errors import LenrlError


def check_registries(cfg: Config) -> None:
    """Bind every registry name and its params to the registered function's signature."""
    from lenrl.algos import (
        ADVANTAGES,
        AGGREGATIONS,
        BUDGET_SCHEDULES,
        GROUP_FILTERS,
        KL_ESTIMATORS,
        QUESTION_BUDGETS,
    )

    for reg, spec, where in (
        (ADVANTAGES, cfg.algo.advantage, "algo.advantage"),
        (loss_registry(cfg.algo.loss.name), cfg.algo.loss, "algo.loss"),
        (AGGREGATIONS, cfg.algo.aggregation, "algo.aggregation"),
        (KL_ESTIMATORS, cfg.algo.kl, "algo.kl"),
        (GROUP_FILTERS, cfg.algo.filter, "algo.filter"),
        (BUDGET_SCHEDULES, cfg.rollout.budget, "rollout.budget"),
        (QUESTION_BUDGETS, cfg.rollout.question_budget, "rollout.question_budget"),
    ):
        reg.check_params(spec.name, spec.params, where)
    _check_groups_whole(cfg)
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
        GROUP_FILTERS.check_params(r.groups.name, r.groups.params, f"rewards[{i}].groups")
        _probe_filter(f"rewards[{i}].groups", r.groups)


def loss_registry(name: str) -> typing.Any:
    """`algo.loss` names a per-token policy loss or a group loss; unknown names list both registries."""
    from lenrl.algos import GROUP_LOSSES, POLICY_LOSSES

    if name in GROUP_LOSSES.names():
        return GROUP_LOSSES
    if name not in POLICY_LOSSES.names():
        known = ", ".join(sorted(POLICY_LOSSES.names() + GROUP_LOSSES.names()))
        raise LenrlError(f"unknown policy loss {name!r} at algo.loss; available: {known}")
    return POLICY_LOSSES


def _check_groups_whole(cfg: Config) -> None:
    """A group loss reshapes its micro-batch by group (DRPO's `uid` reshape, algorithms.md §2.6, §12.4):
    micro-batches of whole groups need micro_batch_size to be a multiple of the group size."""
    from lenrl.algos import GROUP_LOSSES

    name, mbs, n = cfg.algo.loss.name, cfg.train.micro_batch_size, cfg.rollout.n
    if name in GROUP_LOSSES.names() and mbs % n:
        _fail(
            "train.micro_batch_size",
            f"{mbs} splits groups of rollout.n={n}; the group loss {name!r} needs whole groups per micro-batch "
            f"(use a multiple of {n})",
        )


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
            _fail(
                "rollout.budget", f"step {step} budget {b!r} is not in [1, rollout.max_tokens={cfg.rollout.max_tokens}]"
            )


def _probe_filter(where: str, spec: typing.Any) -> None:
    """Call a group filter once on a toy batch so that a bad parameter value fails at load."""
    import torch

    from lenrl.algos import GROUP_FILTERS, FilterInput

    try:
        GROUP_FILTERS.bind(spec.name, spec.params)(
            FilterInput(torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.long))
        )
    except ValueError as e:
        _fail(where, str(e))


def _probe_values(cfg: Config) -> None:
    """Call each configured tensor function once on a 2-response toy batch, so that parameter values the
    function rejects (clip bounds outside (0, 1], a negative eps...) fail at load, not at step 1."""
    import torch

    from lenrl.algos import (
        ADVANTAGES,
        AGGREGATIONS,
        GROUP_LOSSES,
        KL_ESTIMATORS,
        POLICY_LOSSES,
        QUESTION_BUDGETS,
        AdvantageInput,
        GroupLossInput,
        LossInput,
    )

    a = cfg.algo
    x2 = torch.zeros(2, 1)
    mask = torch.ones(2, 1, dtype=torch.bool)
    probes = [
        (
            "algo.advantage",
            ADVANTAGES,
            a.advantage,
            (
                AdvantageInput(
                    torch.tensor([0.0, 1.0]),
                    torch.zeros(2, dtype=torch.long),
                    torch.ones(2, dtype=torch.long),
                    torch.zeros(2, dtype=torch.bool),
                ),
            ),
            {},
        ),
        ("algo.loss", POLICY_LOSSES, a.loss, (LossInput(x2, x2, torch.ones(2), mask),), {})
        if loss_registry(a.loss.name) is POLICY_LOSSES
        else (
            "algo.loss",
            GROUP_LOSSES,
            a.loss,
            (
                GroupLossInput(
                    x2,
                    x2,
                    mask,
                    torch.tensor([True, False]),
                    torch.ones(2, dtype=torch.long),
                    torch.zeros(2, dtype=torch.long),
                ),
            ),
            {"num_groups": 1, "num_tokens": 2, "max_len": 2},
        ),
        (
            "algo.aggregation",
            AGGREGATIONS,
            a.aggregation,
            (x2, mask),
            {"num_tokens": 2, "num_seqs": 2, "max_len": cfg.rollout.max_tokens},
        ),
        ("algo.kl", KL_ESTIMATORS, a.kl, (x2, x2), {}),
        (
            "rollout.question_budget",
            QUESTION_BUDGETS,
            cfg.rollout.question_budget,
            (),
            {"budget": 2, "correct_B": torch.tensor([True, False]), "len_B": torch.ones(2), "max_tokens": 2},
        ),
    ]
    _probe_filter("algo.filter", a.filter)
    for where, reg, spec, args, kwargs in probes:
        try:
            reg.bind(spec.name, spec.params)(*args, **kwargs)
        except ValueError as e:
            _fail(where, str(e))

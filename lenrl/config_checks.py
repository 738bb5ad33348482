"""Config checks that need the registries, derived from the axes table (lenrl/axes.py): every name is
bound to a registered function, its parameters to the function's signature (names, types, finite
numbers), group-relative methods to rollout.n >= 2, and parameter values to the function itself by the
axis's probe. `load_checked_config` runs them before Ray starts, so that a bad config never costs a
cluster start-up; `lenrl eval` checks its reward and grader with `check_reward` / `check_grader`."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any

from lenrl.axes import AXES, Axis, probe_grader, probe_reward, specs_at
from lenrl.config import Config, load_config
from lenrl.errors import LenrlError


def load_checked_config(algo: str, config_file: str | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """`load_config` (schema) then `check_config` (registries): what the commands call."""
    cfg = load_config(algo, config_file, overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Check every registry name, parameter and parameter value of `cfg`, axis by axis (table order)."""
    by_path: dict[str, list[Axis]] = {}
    for axis in AXES:
        by_path.setdefault(axis.path, []).append(axis)
    for path, axes in by_path.items():
        for where, spec in specs_at(cfg, path):
            axis, key = axis_of(axes, spec.name, where)
            reg = axis.registry()
            reg.check_params(key, spec.params, where)
            if axis.group_relative and spec.name != "none" and cfg.rollout.n < 2:
                raise LenrlError(
                    f"config rollout.n: the {axis.label} {spec.name!r} at {where} compares the responses of a "
                    f"group; it needs rollout.n >= 2, got {cfg.rollout.n}"
                )
            if axis.probe is not None:
                _probe(where, functools.partial(axis.probe, cfg, spec, reg.get(key)))


def axis_of(axes: list[Axis], name: str, where: str) -> tuple[Axis, str]:
    """The axis among those sharing a config path (`algo.loss`: policy or group loss) whose registry holds
    `name`, with the registry key; an unknown name lists every registry of the path."""
    key = name
    if axes[0].resolve is not None:
        try:
            key = axes[0].resolve(name)
        except LenrlError as e:
            raise LenrlError(f"{_place(where, '.name')}: {e}") from None
    for axis in axes:
        if key in axis.registry().names():
            return axis, key
    if len(axes) == 1:
        axes[0].registry().get(key, where)  # raises the registry's own "unknown ..." error
    kinds = " or ".join(a.registry().kind for a in axes)
    known = ", ".join(sorted(n for a in axes for n in a.registry().names()))
    raise LenrlError(f"unknown {kinds} {name!r} at {where}; available: {known}")


def check_reward(spec: Any, where: str, *, budgets: list[int], thinking: bool) -> None:
    """One reward spec outside a training config (`lenrl eval --reward`): name, parameters, values."""
    axis = next(a for a in AXES if a.label == "reward")
    _, key = axis_of([axis], spec.name, where)
    reg = axis.registry()
    reg.check_params(key, spec.params, where)
    _probe(where, lambda: probe_reward(reg.get(key), spec.params, budgets=budgets, thinking=thinking))


def check_grader(spec: Any, where: str, *, thinking: bool) -> None:
    """One grader spec outside a training config (`lenrl eval`): name, parameters, values."""
    axis = next(a for a in AXES if a.label == "grader")
    _, key = axis_of([axis], spec.name, where)
    reg = axis.registry()
    reg.check_params(key, spec.params, where)
    _probe(where, lambda: probe_grader(reg.get(key), spec.params, thinking=thinking))


def _probe(where: str, call: Callable[[], None]) -> None:
    try:
        call()
    except ValueError as e:  # the registries' contract for a bad parameter value
        raise LenrlError(f"{_place(where)}: {' '.join(str(e).split())}") from None


def _place(where: str, key: str = "") -> str:
    """`config rewards[0]<key>` for a config location; a command-line option (`--reward`) as it is."""
    return where if where.startswith("-") else f"config {where}{key}"

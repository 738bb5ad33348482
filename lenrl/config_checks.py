"""Config checks that need the registries, derived from the axes table (lenrl/axes.py): every name is
bound to a registered function, its parameters to the function's signature (names, types, finite
numbers), group-relative methods to rollout.n >= 2, and parameter values to the function itself by the
axis's probe. `load_checked_config` runs them before Ray starts, so that a bad config never costs a
cluster start-up; `lenrl eval` checks its reward and grader with `check_reward` / `check_grader`, and every
RewardRunner its grader with `check_grader`. All go through `check_spec`."""

from __future__ import annotations

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

            def probe(axis: Axis, fn: Callable[..., Any], spec: Any = spec) -> None:
                if axis.probe is not None:
                    axis.probe(cfg, spec, fn)

            check_spec(axes, spec, where, probe, rollout_n=cfg.rollout.n)


def check_spec(
    axes: list[Axis],
    spec: Any,
    where: str,
    probe: Callable[[Axis, Callable[..., Any]], None],
    *,
    rollout_n: int | None = None,
) -> None:
    """The one check of a `{name, params}` spec, for a training config and for `lenrl eval`'s options alike:
    its name is registered (or a loadable reference), its parameters fit the function's signature, a
    group-relative method has rollout.n >= 2 (when `rollout_n` is given), and `probe(axis, fn)` accepts the
    parameter values. Any exception the probe raises becomes one LenrlError line naming `where`."""
    axis, key = axis_of(axes, spec.name, where)
    reg = axis.registry()
    reg.check_params(key, spec.params, where)
    if rollout_n is not None and axis.group_relative and spec.name != "none" and rollout_n < 2:
        raise LenrlError(
            f"config rollout.n: the {axis.label} {spec.name!r} at {where} compares the responses of a "
            f"group; it needs rollout.n >= 2, got {rollout_n}"
        )
    fn = reg.get(key)
    _probe(where, lambda: probe(axis, fn))


def axis_of(axes: list[Axis], name: str, where: str) -> tuple[Axis, str]:
    """The axis among those sharing a config path (`algo.loss`: policy or group loss) whose registry holds
    `name`, with the registry key; an unknown name lists every registry of the path."""
    try:
        key = axes[0].key(name)
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
    check_spec(
        [_axis("reward")], spec, where, lambda _, fn: probe_reward(fn, spec.params, budgets=budgets, thinking=thinking)
    )


def check_grader(spec: Any, where: str, *, thinking: bool) -> None:
    """One grader spec outside a training config: `lenrl eval --grader`, and every RewardRunner at
    construction. Name, parameters, and values (the grader grades one toy answer, `probe_grader`)."""
    check_spec([_axis("grader")], spec, where, lambda _, fn: probe_grader(fn, spec.params, thinking=thinking))


def _axis(label: str) -> Axis:
    return next(a for a in AXES if a.label == label)


def _probe(where: str, call: Callable[[], None]) -> None:
    """Run a probe; whatever it raises (a user plugin may raise anything) is one line naming the place."""
    try:
        call()
    except LenrlError:
        raise
    except ValueError as e:  # the registries' contract for a bad parameter value: the message says it all
        raise LenrlError(f"{_place(where)}: {' '.join(str(e).split())}") from None
    except Exception as e:
        raise LenrlError(f"{_place(where)}: {type(e).__name__}: {' '.join(str(e).split())}") from None


def _place(where: str, key: str = "") -> str:
    """`config rewards[0]<key>` for a config location; a command-line option (`--reward`) as it is."""
    return where if where.startswith("-") else f"config {where}{key}"

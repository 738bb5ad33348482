"""Name -> function registries with parameter binding at config-load time.

Every axis (advantage estimators, policy losses, aggregations, KL estimators, rewards) is a `Registry`.
A config node `{name: ..., params: {...}}` is checked against the registered function's keyword-only
parameters before anything runs, so a misspelled parameter, a value of the wrong type (a string where the
annotation says float) or a non-finite number fails at load (torchtune's `config.validate`).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from lenrl.errors import LenrlError


class Registry:
    def __init__(self, kind: str, runtime: tuple[str, ...] = ()):
        """`runtime`: keyword-only arguments supplied by the caller at run time, never from config."""
        self.kind = kind
        self.runtime = runtime
        self._fns: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._fns:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._fns[name] = fn
            return fn

        return deco

    def get(self, name: str, where: str = "") -> Callable[..., Any]:
        if name not in self._fns:
            at = f" at {where}" if where else ""
            raise LenrlError(f"unknown {self.kind} {name!r}{at}; available: {', '.join(sorted(self._fns))}")
        return self._fns[name]

    def names(self) -> list[str]:
        return sorted(self._fns)

    def check_params(self, name: str, params: dict[str, Any], where: str = "") -> None:
        """Raise LenrlError if `params` does not fit the keyword-only parameters of `name`."""
        fn = self.get(name, where)
        sig = inspect.signature(fn)
        kw = {
            p.name: p
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in self.runtime
        }
        at = f" at {where}" if where else ""
        open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        unknown = sorted(set(params) - set(kw))
        if unknown and not open_kwargs:  # a **kwargs function (e.g. a TRL reward) takes any keyword
            raise LenrlError(
                f"{self.kind} {name!r}{at} has no parameter {unknown[0]!r}; it takes: {', '.join(kw) or 'none'}"
            )
        missing = [k for k, p in kw.items() if p.default is inspect.Parameter.empty and k not in params]
        if missing:
            raise LenrlError(f"{self.kind} {name!r}{at} needs parameter {missing[0]!r}")
        hints = _type_hints(fn)
        for k, v in params.items():
            if not _finite(v):
                raise LenrlError(f"{self.kind} {name!r}{at}: parameter {k!r} must be finite, got {v!r}")
            if k in kw and k in hints and not _fits(hints[k], v):
                tp = hints[k]
                want = tp.__name__ if tp in (bool, int, float, str) else str(tp).replace("collections.abc.", "")
                raise LenrlError(
                    f"{self.kind} {name!r}{at}: parameter {k!r} expects {want}, got {v!r} ({type(v).__name__})"
                )

    def bind(self, name: str, params: dict[str, Any], where: str = "") -> Callable[..., Any]:
        """Return `fn` with `params` fixed, after checking them."""
        self.check_params(name, params, where)
        fn = self.get(name, where)

        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **params, **kwargs)

        bound.__name__ = name
        bound.__doc__ = fn.__doc__
        return bound


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved annotations; none when they cannot be resolved (a plugin's own types)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # NameError and friends from forward references: check names only
        return {}


def _finite(v: Any) -> bool:
    """No NaN or infinity anywhere in a parameter value (lists and mappings included)."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list | tuple):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


def _fits(tp: Any, v: Any) -> bool:
    """Whether a config value (YAML scalars, lists, mappings) fits annotation `tp`; unknown types pass."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, v) for a in args)
    if tp is type(None):
        return v is None
    if tp is bool:
        return isinstance(v, bool)
    if tp in (int, float):
        ok = int | float if tp is float else int
        return isinstance(v, ok) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(v, list | tuple) and (not args or all(_fits(args[0], x) for x in v))
    if origin is dict or tp is dict:
        return isinstance(v, dict)
    return True

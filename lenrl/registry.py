"""Name -> function registries with parameter binding at config-load time.

Every axis (advantage estimators, policy losses, aggregations, KL estimators, rewards) is a `Registry`.
A config node `{name: ..., params: {...}}` is checked against the registered function's keyword-only
parameters before anything runs, so a misspelled parameter fails at load (torchtune's `config.validate`).
"""

from __future__ import annotations

import inspect
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

    def bind(self, name: str, params: dict[str, Any], where: str = "") -> Callable[..., Any]:
        """Return `fn` with `params` fixed, after checking them."""
        self.check_params(name, params, where)
        fn = self.get(name, where)

        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **params, **kwargs)

        bound.__name__ = name
        bound.__doc__ = fn.__doc__
        return bound

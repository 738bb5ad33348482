"""Testbed recipes: a named set of task, model and training settings, with `key=value` overrides.

A testbed is named `testbed:NAME` or `testbed:NAME:key=value:...` (model.name, data.source, eval
benchmarks and `lenrl testbed build NAME key=value ...` all accept it; colons, not commas, so that a spec
stays one item of a comma list such as `--benchmarks`). The built model is cached under a
directory named by a hash of the whole recipe, so changing any setting builds a new model and an unchanged
recipe is never rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lenrl.errors import LenrlError
from lenrl.testbed.task import TaskSpec

PREFIX = "testbed:"
SEP = ":"
FORMAT_VERSION = 3
"""bump when the trace format, tokenizer or training code changes what a recipe builds"""


@dataclass(frozen=True)
class Recipe:
    task: TaskSpec = field(default_factory=lambda: TaskSpec(max_steps=5))
    """1-5 steps by default: 6-step chains cost a model of this size most of its accuracy"""
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    train_steps: int = 800
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 50
    seed: int = 0
    threads: int = 2
    eval_problems: int = 120
    """held-out problems greedily decoded at the end of the build (reported, not a gate)"""

    def __post_init__(self) -> None:
        for k in ("hidden", "layers", "heads", "intermediate", "train_steps", "batch", "threads"):
            if getattr(self, k) < 1:
                raise LenrlError(f"testbed recipe: {k} must be >= 1, got {getattr(self, k)}")
        if self.hidden % self.heads:
            raise LenrlError(f"testbed recipe: hidden {self.hidden} is not divisible by heads {self.heads}")
        if not self.lr > 0:
            raise LenrlError(f"testbed recipe: lr must be > 0, got {self.lr}")

    def digest(self) -> str:
        """Hash of everything that changes the built model (threads and eval_problems do not)."""
        d = dataclasses.asdict(self)
        d.pop("threads"), d.pop("eval_problems")
        if not d["task"]["skip_share"]:  # added after FORMAT_VERSION 3: off, it keeps the digests built before
            d["task"].pop("skip_share")
        blob = json.dumps({"version": FORMAT_VERSION, **d}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


RECIPES: dict[str, Recipe] = {
    "default": Recipe(),
    # 1-6 steps, a longer build
    "hard": Recipe(task=TaskSpec(max_steps=6), train_steps=1200),
    # quick experiments: 1-3 steps, a smaller model, fewer steps
    "small": Recipe(task=TaskSpec(max_steps=3), hidden=128, intermediate=384, train_steps=400),
    # under-thinking: 30% of the SFT traces stop early and answer wrongly (ThinkEdit's testbed, docs/thinkedit.md)
    "underthink": Recipe(task=TaskSpec(max_steps=5, skip_share=0.3)),
}
TASK_KEYS = {f.name for f in dataclasses.fields(TaskSpec)}
MODEL_KEYS = {f.name for f in dataclasses.fields(Recipe)} - {"task"}


def is_testbed(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, Recipe]:
    """`testbed:NAME[:key=value...]` (or `NAME[:key=value...]`) -> (NAME, recipe with overrides)."""
    body = spec[len(PREFIX) :] if is_testbed(spec) else spec
    name, *items = [s.strip() for s in body.split(SEP) if s.strip()] or [""]
    return name, make_recipe(name, items)


def make_recipe(name: str, overrides: list[str]) -> Recipe:
    if name not in RECIPES:
        raise LenrlError(f"unknown testbed {name!r}; known: {', '.join(RECIPES)}")
    base = RECIPES[name]
    task_kw: dict[str, Any] = {}
    model_kw: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise LenrlError(f"testbed {name}: override {item!r} is not key=value")
        if key in TASK_KEYS:
            task_kw[key] = _value(name, key, raw, getattr(base.task, key))
        elif key in MODEL_KEYS:
            model_kw[key] = _value(name, key, raw, getattr(base, key))
        else:
            keys = ", ".join(sorted(TASK_KEYS | MODEL_KEYS))
            raise LenrlError(f"testbed {name}: unknown setting {key!r}; settings: {keys}")
    task = dataclasses.replace(base.task, **task_kw)
    return dataclasses.replace(base, task=task, **model_kw)


def _value(name: str, key: str, raw: str, like: Any) -> Any:
    try:
        return type(like)(float(raw)) if isinstance(like, int) and float(raw).is_integer() else type(like)(raw)
    except ValueError:
        kind = {"int": "an integer", "float": "a number"}.get(type(like).__name__, type(like).__name__)
        raise LenrlError(f"testbed {name}: {key}={raw!r} is not {kind}") from None


def canonical(name: str, recipe: Recipe) -> str:
    """The shortest spec that gives `recipe`: the name plus the settings that differ from the named one."""
    base = RECIPES[name]
    t, b = recipe.task, base.task
    diffs = [f"{k}={getattr(t, k)}" for k in sorted(TASK_KEYS) if getattr(t, k) != getattr(b, k)]
    diffs += [f"{k}={getattr(recipe, k)}" for k in sorted(MODEL_KEYS) if getattr(recipe, k) != getattr(base, k)]
    return PREFIX + SEP.join([name, *diffs])

"""The testbed as a data source: `data.source=testbed:NAME[:key=value...]` and `--benchmarks testbed:NAME`.

Training draws from the train split with the run's seed; evaluation reads the held-out split with a fixed
seed, so every model is evaluated on the same problems, none of which any training run ever sees
(`task.is_held_out` splits by the expression itself).
"""

from __future__ import annotations

from lenrl.errors import LenrlError
from lenrl.records import Problem
from lenrl.testbed.recipe import parse_spec
from lenrl.testbed.task import problems

TRAIN_DEFAULT_N = 10000
EVAL_DEFAULT_N = 200
EVAL_SEED = 0


def testbed_problems(spec: str, *, split: str, limit: int | None, seed: int, difficulty: int = 0) -> list[Problem]:
    """`split` train or test (also accepted: validation/eval for test); `difficulty` 0 draws every number of
    steps of the recipe, d > 0 only chains of d steps."""
    _, recipe = parse_spec(spec)
    split = {"validation": "test", "eval": "test"}.get(split, split)
    if split not in ("train", "test"):
        raise LenrlError(f"data.split for {spec}: must be train or test, got {split!r}")
    n = limit or (TRAIN_DEFAULT_N if split == "train" else EVAL_DEFAULT_N)
    return problems(recipe.task, n, split=split, seed=seed, steps=difficulty or None)


def held_out(spec: str, limit: int | None = None, difficulty: int = 0) -> list[Problem]:
    return testbed_problems(spec, split="test", limit=limit, seed=EVAL_SEED, difficulty=difficulty)

"""Evaluation benchmarks by name (docs/algorithms.md §11.1), loaded from their usual Hugging Face dataset ids or
from a local file, as `Problem` records; `testbed:NAME` is the held-out split of a testbed task.

`--data NAME=PATH` points a benchmark at a local JSONL/Parquet copy; a name that is not built in is
accepted only with a file (any JSONL with `problem`/`answer` columns, or the fields given), so a typo in a
benchmark name fails instead of silently evaluating something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lenrl.data.loaders import load_problems
from lenrl.errors import LenrlError
from lenrl.records import Problem


@dataclass(frozen=True)
class Benchmark:
    name: str
    hf_id: str | None
    split: str
    hf_fields: tuple[str, str]
    """question and answer columns of the Hugging Face copy"""
    hf_config: str | None = None
    reward_params: dict[str, Any] = field(default_factory=dict)
    """math_correct parameters: GSM8K falls back to the last number (§11.2), the others need a box"""


TESTBED = "testbed:"
"""`testbed:NAME[:key=value...]`: the held-out split of a testbed task (lenrl/testbed/data.py), graded on
its boxed integer like MATH-500"""

BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("math500", "HuggingFaceH4/MATH-500", "test", ("problem", "answer")),
        Benchmark("aime24", "HuggingFaceH4/aime_2024", "train", ("problem", "answer")),
        Benchmark("aime25", "math-ai/aime25", "test", ("problem", "answer")),
        Benchmark("amc23", "math-ai/amc23", "test", ("question", "answer")),
        # openai/gsm8k's answer column is the whole solution; the loader keeps what follows "####"
        Benchmark("gsm8k", "openai/gsm8k", "test", ("question", "answer"), "main", {"fallback": "last_number"}),
    )
}


def parse_data_args(items: list[str], benchmarks: list[str]) -> dict[str, str]:
    """`--data` values: `NAME=PATH`, or a bare `PATH` when exactly one benchmark is evaluated."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            if len(benchmarks) != 1:
                raise LenrlError(f"--data {item!r}: with several benchmarks write NAME=PATH")
            name, path = benchmarks[0], item
        if name not in benchmarks:
            raise LenrlError(f"--data {item!r}: {name!r} is not among the benchmarks {benchmarks}")
        out[name] = path
    return out


def check_benchmark_names(names: list[str], data: dict[str, str]) -> None:
    for name in names:
        if name.startswith(TESTBED) and name not in data:
            from lenrl.testbed.recipe import parse_spec

            parse_spec(name)  # an unknown testbed or setting fails here, before Ray starts
            continue
        if name not in BENCHMARKS and name not in data:
            raise LenrlError(
                f"unknown benchmark {name!r}; built in: {', '.join(BENCHMARKS)} (or give a file: --data {name}=PATH)"
            )


def load_benchmark(name: str, path: str | None = None, *, limit: int | None = None) -> list[Problem]:
    """The problems of benchmark `name`, from `path` when given (fields `problem`/`answer`, as the
    offline copies and most JSONL exports), else from its Hugging Face id."""
    if path is not None:
        return load_problems(path, question_field="problem", answer_field="answer", limit=limit)
    if name.startswith(TESTBED):
        from lenrl.testbed.data import held_out

        return held_out(name, limit)
    b = BENCHMARKS.get(name)
    if b is None or b.hf_id is None:
        raise LenrlError(f"benchmark {name!r} has no built-in source; give --data {name}=PATH")
    q, a = b.hf_fields
    return load_problems(b.hf_id, split=b.split, question_field=q, answer_field=a, limit=limit, hf_config=b.hf_config)


def reward_params(name: str) -> dict[str, Any]:
    b = BENCHMARKS.get(name)
    return dict(b.reward_params) if b else {}

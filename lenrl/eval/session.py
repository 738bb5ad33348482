"""The pieces of one evaluation that `lenrl eval`, in-training evaluation (lenrl/trainer/evaluation.py) and
`lenrl edit` share, so that all three produce the same numbers: prompts rendered the same way, engines
started the same way, and the same graders.

`Graders` holds one RewardRunner (a pool of grading processes) per benchmark, started on first use and kept
until `close`: in-training evaluation grades every `eval.every` steps and should not pay the pool's start-up
each time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lenrl.records import Prompt


def eval_prompts(problems: list, tok: Any, settings: Any) -> list[Prompt]:
    """`problems` rendered with the evaluation's instruction and system prompt, plus `think_prefix` as
    prompt text (a too-long prompt is a LenrlError here)."""
    from lenrl.data.prompts import PromptRenderer

    ps = PromptRenderer(tok, settings.instruction, settings.max_prompt_tokens, settings.system_prompt)(problems)
    if not settings.think_prefix:
        return ps
    extra = tok(settings.think_prefix, add_special_tokens=False)["input_ids"]
    return [Prompt(p.problem, p.text + settings.think_prefix, p.token_ids + extra) for p in ps]


def context_length(tok: Any, prompts: list[Prompt], settings: Any) -> int:
    """The engine context an evaluation needs: the longest prompt, the generation, and the forced answer
    when budgets are evaluated."""
    force = 0
    if settings.budgets:
        force = len(tok(settings.forcing, add_special_tokens=False)["input_ids"]) + settings.force_tokens
    return max(len(p.token_ids) for p in prompts) + settings.max_tokens + force


def start_engines(model_path: str, settings: Any, ctx: int, *, workers: int, dtype: str) -> tuple[Any, list]:
    """`workers` vLLM engines as Ray actors with the evaluation's sampling settings: (RolloutGroup, actors).
    Every engine gets the same seed, so per-request seeds do not depend on the number of workers."""
    import ray

    from lenrl.config import RolloutConfig
    from lenrl.rollout.vllm_engine import VLLMEngine, engine_actor_env
    from lenrl.workers.groups import RolloutGroup

    cfg = RolloutConfig(
        n=settings.n,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_model_len=ctx,
    )
    cls = ray.remote(num_cpus=1)(VLLMEngine).options(runtime_env={"env_vars": engine_actor_env()})
    actors: list[Any] = [cls.remote(model_path, cfg, dtype=dtype, seed=settings.seed) for _ in range(workers)]
    ray.get([a.__ray_ready__.remote() for a in actors])
    return RolloutGroup(actors), actors


def grader_spec(args: argparse.Namespace, bench: str):  # -> FnSpec
    """The grader of `bench`: `--grader` with, for the math grader, the benchmark's fallback (GSM8K: the
    last number, docs/algorithms.md §11.2) unless `--fallback` says otherwise."""
    from lenrl.config import FnSpec
    from lenrl.eval.benchmarks import reward_params

    params = reward_params(bench) if args.grader == "math" else {}
    if args.fallback is not None:
        params["fallback"] = args.fallback
    return FnSpec(args.grader, params)


def benchmark_meta(label: str, model: str, bench: str, data_map: dict[str, str]) -> dict:
    """What a summary records about its evaluation: the label, the model, the benchmark and its data."""
    from lenrl.eval.benchmarks import BENCHMARKS

    b = BENCHMARKS.get(bench)
    data = data_map.get(bench) or (f"{b.hf_id}[{b.split}]" if b else None)
    return {"label": label, "model": model, "benchmark": bench, "data": data}


class Graders:
    """Grades benchmarks as `lenrl eval`'s options (`args`: reward, grader, fallback, thinking) say."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._runners: dict[str, Any] = {}

    def _runner(self, bench: str):  # -> RewardRunner
        from lenrl.config import RewardSpec
        from lenrl.reward_runner import RewardRunner

        if bench not in self._runners:
            spec = grader_spec(self.args, bench)
            self._runners[bench] = RewardRunner(
                [RewardSpec(self.args.reward)], grader=spec, thinking=self.args.thinking
            )
        return self._runners[bench]

    def evaluate(
        self,
        bench: str,
        prompts: list[Prompt],
        engines: Any,
        tok: Any,
        settings: Any,
        out: Path,
        meta: dict,
        aes_base=None,
    ) -> dict:
        """Generate, grade and summarise one benchmark into `out` (samples.jsonl, settings.json); the summary."""
        from lenrl.eval.runner import BenchmarkEval
        from rewards.math_correct import extract_answer, normalize

        fallback = grader_spec(self.args, bench).params.get("fallback", "none")
        thinking = self.args.thinking

        def extract(text: str) -> str | None:  # majority voting: the math grader's extraction rule
            a = extract_answer(text, fallback=fallback, thinking=thinking)
            return None if a is None else normalize(a)

        ev = BenchmarkEval(engines, self._runner(bench), tok, settings, extract)
        return ev.run(prompts, out, meta=meta, aes_base=aes_base)

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()

    def __enter__(self) -> Graders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

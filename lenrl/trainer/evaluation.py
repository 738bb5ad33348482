"""In-training evaluation through `lenrl eval`'s own code.

Every `eval.every` steps (and at the last step) the training engines, which hold that step's weights,
evaluate held-out problems. `eval.args` are `lenrl eval` options, read by its parser into its settings;
benchmarks are loaded, prompts rendered, samples drawn, graded and summarised by the same functions
(lenrl/evaluate.py, lenrl/eval/runner.py). Every request carries the evaluation's sampling settings and
seed, so the numbers equal what `lenrl eval --model <that step's checkpoint> <eval.args>` reports
(tests/test_in_training_eval_e2e.py). Output: `<run>/evals/step_NNNNNN/<benchmark>/` (samples.jsonl,
summary.json) and `eval/<benchmark>/{accuracy,len_mean,len_p90,truncated_frac}` in the step's metrics.

Everything that can be wrong (options, benchmark names, data, prompt and generation lengths against
rollout.max_model_len) fails when the run is set up, before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from lenrl.config import Config
from lenrl.errors import LenrlError
from lenrl.files import atomic_write

SET_BY_THE_RUN = ("--model", "--label", "--out", "--workers", "--baseline", "--dtype", "--chunk")
EVALS_DIR = "evals"


def eval_args(cfg: Config) -> argparse.Namespace:
    """`eval.args` through `lenrl eval`'s parser (empty: a testbed source's held-out split)."""
    from lenrl.eval.benchmarks import check_benchmark_names, parse_data_args
    from lenrl.evaluate import parse_args

    text = cfg.eval.args or default_args(cfg)
    argv = shlex.split(text)
    taken = [a.split("=")[0] for a in argv if a.split("=")[0] in SET_BY_THE_RUN]
    if taken:
        raise LenrlError(f"eval.args: {taken[0]} is set by the training run itself; remove it from {text!r}")
    try:
        args = parse_args(argv)
    except SystemExit:  # argparse printed what is wrong
        raise LenrlError(f"eval.args: not valid `lenrl eval` options: {text!r} (see above)") from None
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    args.data_map = parse_data_args(args.data, names)
    check_benchmark_names(names, args.data_map)
    args.dtype = cfg.model.dtype
    return args


def default_args(cfg: Config) -> str:
    """The options the run's closing hint prints (`lenrl/train.py`): a testbed's held-out split."""
    if not cfg.data.source.startswith("testbed:"):
        raise LenrlError("eval.args: name the benchmarks to evaluate on (e.g. '--benchmarks math500 --limit 64')")
    thinking = " --thinking" if cfg.model.thinking else ""
    return f"--benchmarks {cfg.data.source} --n 4 --temperature 1 --max-tokens 384{thinking}"


class PeriodicEval:
    """Loaded and checked at setup; `__call__(step, engines, run_dir)` evaluates once; `close` stops the
    graders (kept between evaluations)."""

    def __init__(self, cfg: Config, tokenizer: Any):
        from lenrl.eval.benchmarks import load_benchmark
        from lenrl.eval.session import Graders, context_length, eval_prompts
        from lenrl.evaluate import settings_from, with_targets

        self.args = eval_args(cfg)
        self.settings = s = settings_from(self.args)
        self.tok = tokenizer
        names = [b.strip() for b in self.args.benchmarks.split(",") if b.strip()]
        self.prompts = {
            b: eval_prompts(
                with_targets(load_benchmark(b, self.args.data_map.get(b), limit=self.args.limit), s), tokenizer, s
            )
            for b in names
        }
        ctx = context_length(tokenizer, [p for ps in self.prompts.values() for p in ps], s)
        if ctx > cfg.rollout.max_model_len:
            raise LenrlError(
                f"eval.args: the longest prompt + --max-tokens {s.max_tokens}"
                f"{' + the forced answer' if s.budgets else ''} ({ctx} tokens) exceed rollout.max_model_len"
                f" {cfg.rollout.max_model_len}"
            )
        self.graders = Graders(self.args)

    def __call__(self, step: int, engines: Any, run_dir: Path) -> dict[str, float]:
        from lenrl.eval.session import benchmark_meta

        out = run_dir / EVALS_DIR / f"step_{step:06d}"
        metrics: dict[str, float] = {}
        for bench, ps in self.prompts.items():
            meta = benchmark_meta(f"step {step}", str(run_dir), bench, self.args.data_map)
            summary = self.graders.evaluate(bench, ps, engines, self.tok, self.settings, out / bench, meta)
            atomic_write(out / bench / "summary.json", json.dumps(summary, indent=1))
            length = summary["length"]["all"]
            metrics.update(
                {
                    f"eval/{bench}/accuracy": summary["accuracy"]["avg@k"],
                    f"eval/{bench}/len_mean": length["mean"],
                    f"eval/{bench}/len_p90": length["p90"],
                    f"eval/{bench}/truncated_frac": summary["truncation_rate"],
                }
            )
        return metrics

    def close(self) -> None:
        self.graders.close()

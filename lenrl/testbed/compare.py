"""`lenrl testbed compare`: every length-control method trained from the same testbed model, then evaluated
on the same held-out problems, as a Markdown table and an accuracy-vs-length plot.

Each method is a preset (configs/algos/) plus overrides, trained by the ordinary driver (`lenrl.train.run`)
with the same seed, steps, prompts per step, group size and learning rate, then evaluated by the ordinary
evaluator (`lenrl eval`, lenrl/evaluate.py) on the testbed's held-out split; the start model is evaluated the
same way and is the AES baseline. Methods run one after another; a method whose evaluation summary exists
is not redone, and a method whose training finished (its checkpoint exists) is only evaluated, so an
interrupted comparison resumes where it stopped.

Layout: `<out>/runs/<method>/` (training run: config.yaml, metrics.jsonl, checkpoint/),
`<out>/evals/<method>/` (lenrl eval output), `<out>/results.md`, `<out>/pareto.png`, `<out>/curves.png`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of
from lenrl.files import atomic_write

START = "start"


@dataclass(frozen=True)
class Method:
    name: str
    algo: str
    overrides: tuple[str, ...] = ()
    note: str = ""
    capped: bool = False
    """trained under the tight cap (--cap): the method is a truncation penalty at the cap (DLER); the others
    get the generous --max-tokens, so that the cap alone does not shorten them"""


_PLAIN_GRPO = "plain GRPO preset with this reward added"


def _with_reward(name: str) -> str:
    """The grpo preset's correctness reward plus the length reward `name` (its own default parameters)."""
    return f"rewards=[{{name: math_correct, weight: 1.0, params: {{}}}}, {{name: {name}, weight: 1.0, params: {{}}}}]"


METHODS = {
    m.name: m
    for m in (
        Method("grpo", "grpo", note="control: no length term"),
        Method("dler", "dler", capped=True),
        Method("da_dler", "da_dler", capped=True),
        Method("drpo", "drpo"),
        Method("grpo_lambda", "grpo_lambda"),
        Method("palu", "palu"),
        Method("curriculum", "curriculum"),
        Method("l1", "l1", ("data.target_len=[16,96]",), note="target lengths U{16..96} in the prompt"),
        Method("kimi", "grpo", (_with_reward("kimi"),), note=_PLAIN_GRPO),
        Method("cosine", "grpo", (_with_reward("cosine"),), note=_PLAIN_GRPO),
        Method("shorter_better", "grpo", (_with_reward("shorter_better"),), note=_PLAIN_GRPO),
    )
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lenrl testbed compare", description=__doc__.splitlines()[0])
    a = p.add_argument
    a("testbed", nargs="?", default="testbed:default", help="testbed spec (default testbed:default)")
    a("--out", default="runs/testbed-compare")
    a("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    a("--steps", type=int, default=20)
    a("--prompts-per-step", type=int, default=16)
    a("--n", type=int, default=8, help="group size (rollout.n)")
    a("--max-tokens", type=int, default=320, help="training cap of the uncapped methods (rollout.max_tokens)")
    a("--cap", type=int, default=80, help="training cap of the truncation-penalty methods (dler, da_dler)")
    a("--lr", type=float, default=1e-4)
    a("--seed", type=int, default=0)
    a("--eval-limit", type=int, default=200, help="held-out problems")
    a("--eval-n", type=int, default=4, help="samples per held-out problem (avg@k)")
    a("--eval-max-tokens", type=int, default=384)
    a("overrides", nargs="*", help="extra key=value overrides applied to every method")
    return p.parse_args(argv)


def train_overrides(args: argparse.Namespace, method: Method, run_dir: Path) -> list[str]:
    spec = args.testbed if args.testbed.startswith("testbed:") else f"testbed:{args.testbed}"
    return [
        f"model.name={spec}",
        f"data.source={spec}",
        "model.thinking=true",
        f"train.steps={args.steps}",
        f"train.prompts_per_step={args.prompts_per_step}",
        f"train.lr={args.lr}",
        f"train.seed={args.seed}",
        f"rollout.n={args.n}",
        f"rollout.max_tokens={args.cap if method.capped else args.max_tokens}",
        f"rollout.max_model_len={64 + max(args.cap, args.max_tokens)}",
        "data.max_prompt_tokens=64",
        f"output.dir={run_dir.parent}",
        f"output.name={run_dir.name}",
        *method.overrides,
        *args.overrides,
    ]


def run_method(args: argparse.Namespace, method: Method, out: Path) -> dict[str, Any]:
    """Train (unless its checkpoint exists) and evaluate (unless its summary exists) one method."""
    from lenrl.config import load_config
    from lenrl.train import run as train_run

    run_dir, info_path = out / "runs" / method.name, out / "runs" / method.name / "compare.json"
    if not info_path.exists():
        cfg = load_config(method.algo, None, train_overrides(args, method, run_dir))  # bad input fails here
        if run_dir.exists():  # an interrupted training run: start it again
            shutil.rmtree(run_dir)
        print(f"lenrl testbed compare: training {method.name} ({method.algo})", flush=True)
        t0 = time.perf_counter()
        train_run(cfg)
        atomic_write(info_path, json.dumps({"train_seconds": time.perf_counter() - t0}))
    evaluate(args, str(run_dir / "checkpoint"), method.name, out)
    return json.loads(info_path.read_text())


def evaluate(args: argparse.Namespace, model: str, label: str, out: Path) -> dict[str, Any]:
    from lenrl.eval.report import load_results
    from lenrl.evaluate import main as eval_main

    dest = out / "evals" / label
    bench = args.testbed if args.testbed.startswith("testbed:") else f"testbed:{args.testbed}"
    if not _summary_path(dest).exists():
        argv = [
            "--model", model, "--label", label, "--benchmarks", bench, "--limit", str(args.eval_limit),
            "--n", str(args.eval_n), "--temperature", "1.0", "--top-p", "1.0",
            "--max-tokens", str(args.eval_max_tokens), "--seed", str(args.seed), "--out", str(dest),
        ]  # fmt: skip
        if label != START:
            argv += ["--baseline", str(out / "evals" / START)]
        if eval_main(argv) != 0:
            raise LenrlError(f"evaluation of {label} failed (see above)")
    [summary] = load_results(str(dest))
    return summary


def _summary_path(dest: Path) -> Path:
    found = sorted(dest.glob("*/summary.json"))
    return found[0] if found else dest / "missing" / "summary.json"


def compare_main(argv: list[str]) -> int:
    args = parse_args(argv)

    def run() -> int:
        from lenrl.testbed.report import write_results

        names = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in names if m not in METHODS]
        if unknown:
            raise LenrlError(f"--methods: unknown {unknown}; available: {', '.join(METHODS)}")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        from lenrl.model.embedded import resolve_model

        start = resolve_model(args.testbed if args.testbed.startswith("testbed:") else f"testbed:{args.testbed}")
        evaluate(args, start, START, out)
        for name in names:
            run_method(args, METHODS[name], out)
            write_results(out, [START, *names[: names.index(name) + 1]], METHODS)
        print(f"lenrl testbed compare: {write_results(out, [START, *names], METHODS)}", flush=True)
        return 0

    return exit_code_of(run)

"""`lenrl testbed compare`: every length-control method trained from the same testbed model, then evaluated
on the same held-out problems, as a Markdown table and an accuracy-vs-length plot.

Each method is a preset (configs/algos/) plus overrides, trained by the ordinary driver (`lenrl.train.run`)
with the same seed, steps, prompts per step, group size and learning rate, then evaluated by the ordinary
evaluator (`lenrl eval`, lenrl/evaluate.py) on the testbed's held-out split; the start model is evaluated the
same way and is the AES baseline. Methods run one after another; a method whose evaluation summary exists
is not redone, a method whose training finished is only evaluated, and a training run that was interrupted
continues from its newest checkpoint (every 5 steps; `train.resume=auto`), so an interrupted comparison
resumes where it stopped. The settings of the comparison (testbed, training and
evaluation sizes, every method's preset and overrides) are stored in `<out>/settings.json`; resuming with
other settings is refused (adding methods is allowed), so that one table never mixes two protocols.

L1 (a method with target lengths) is also evaluated with target lengths in the prompt, before (the start
model) and after training, on the same held-out problems and targets: its length-control error
(`length_control` in the summaries, lenrl/eval/metrics.py) is reported beside the table.

Layout: `<out>/runs/<method>/` (training run: config.yaml, metrics.jsonl, checkpoint/),
`<out>/evals/<method>/` (lenrl eval output), `<out>/evals/length_control/{start,<method>}/` (the evaluations
with target lengths), `<out>/settings.json`, `<out>/results.md`, `<out>/pareto.png`, `<out>/curves.png`.
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
LENGTH_CONTROL = "length_control"
"""`<out>/evals/length_control/`: the evaluations with target lengths in the prompt"""


@dataclass(frozen=True)
class Method:
    name: str
    algo: str
    overrides: tuple[str, ...] = ()
    note: str = ""
    capped: bool = False
    """trained under the tight cap (--cap): the method is a truncation penalty at the cap (DLER); the others
    get the generous --max-tokens, so that the cap alone does not shorten them"""
    target_len: tuple[int, int] | None = None
    """L1: training targets N ~ U{low..high} (data.target_len), and the same range for the length-control
    evaluation of the start and trained models"""

    def record(self) -> dict[str, Any]:
        """What defines the method's run (compared on resume; the note is only presentation)."""
        tl = None if self.target_len is None else list(self.target_len)
        return {"algo": self.algo, "overrides": list(self.overrides), "capped": self.capped, "target_len": tl}


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
        # PALU shrinks a question's budget L_q only when that question comes back, and from L_max by the spread
        # of its correct lengths (~30-60 tokens here) per passed visit. 20 steps x 16 prompts of 10000
        # problems revisit none; with 32 problems each comes back ~10 times, and L_max = 160 (about the start
        # model's p90 length, as the paper's L_max sits near its model's long answers) lets the budget bind.
        Method(
            "palu",
            "palu",
            ("data.limit=32", "rollout.max_tokens=160"),
            note="32 training problems (~10 visits each), L_max 160 (the start's p90)",
        ),
        # The paper's budget runs 256 -> 87 (a third) for a model whose answers fill 256 tokens; here it runs
        # from the start model's p90 (160) to a third of it (54, about 2 x L*). The budget is written into the
        # prompt ("Use exactly {budget} tokens.", text the testbed's SFT data holds with random budgets).
        Method(
            "curriculum",
            "curriculum",
            ("rollout.max_tokens=160", "rollout.budget.params.end=54"),
            note="budget 160 -> 54 (the paper's 256 -> 87 scaled to the start's p90)",
        ),
        # The triangular reward peaks at ℓ = B(t): it pays for filling the budget, and in 5 steps per stage
        # the responses fill each new, lower budget and are cut at it. The paper's flat-then-decay ablation
        # ("band", §3.1: shorter, less accurate) pays the same for any length within the budget.
        Method(
            "curriculum_band",
            "curriculum",
            ("rollout.max_tokens=160", "rollout.budget.params.end=54", "rewards.1.params.shape=band"),
            note="as curriculum, with the paper's band length reward (flat up to B(t))",
        ),
        # L1's alpha 3e-4 is sized for its targets U{100..4000}: missing by the whole range costs about one
        # correct answer (3e-4 * 3900 = 1.2). Testbed responses are 11-220 tokens (L* 11-46), so with 3e-4 a
        # miss by the whole range costs ~0.02 and, in groups that are not all correct, the length term is
        # noise next to correctness (in all-correct groups GRPO's std normalisation makes its scale moot).
        # 5e-3 restores L1's ratio: a miss by ~200 tokens (the start's longest response against the lowest
        # target) costs ~1. Targets run from about the mean L* (24: a 3-step chain's minimal trace) to about
        # the start model's mean length: lengths a model reaches without skipping a step or padding the most.
        Method(
            "l1",
            "l1",
            ("rewards.1.params.alpha=5.0e-3",),
            note="targets U{24..96} in the prompt, alpha 5e-3 (L1's 3e-4 scaled to testbed lengths)",
            target_len=(24, 96),
        ),
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
    spec = _spec(args)
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
        "output.checkpoint_every=5",
        "train.resume=auto",
        *([] if method.target_len is None else [f"data.target_len=[{method.target_len[0]},{method.target_len[1]}]"]),
        *method.overrides,
        *args.overrides,
    ]


def run_method(args: argparse.Namespace, method: Method, out: Path) -> dict[str, Any]:
    """Train (unless its checkpoint exists) and evaluate (unless its summary exists) one method."""
    from lenrl.config import load_config
    from lenrl.train import run as train_run
    from lenrl.trainer.checkpoint import latest

    run_dir, info_path = out / "runs" / method.name, out / "runs" / method.name / "compare.json"
    if not info_path.exists():
        # An interrupted training run continues from its newest checkpoint (train.resume=auto); one that
        # stopped before its first checkpoint starts again.
        if run_dir.exists() and latest(run_dir) is None:
            shutil.rmtree(run_dir)
        cfg = load_config(method.algo, None, train_overrides(args, method, run_dir))  # bad input fails here
        print(f"lenrl testbed compare: training {method.name} ({method.algo})", flush=True)
        t0 = time.perf_counter()
        train_run(cfg)
        atomic_write(info_path, json.dumps({"train_seconds": time.perf_counter() - t0}))
    checkpoint = str(run_dir / "checkpoint")
    evaluate(args, checkpoint, method.name, out)
    if method.target_len is not None:
        length_control_evals(args, method, checkpoint, out)
    return json.loads(info_path.read_text())


def length_control_evals(args: argparse.Namespace, method: Method, checkpoint: str, out: Path) -> None:
    """The start model and `method`'s trained model, evaluated with the training prompt's instruction
    ("Think for {target_len} tokens.") and targets drawn from the method's range with the comparison's seed,
    so both see the same problems with the same targets (L1 arXiv 2503.04697 §4: length error)."""
    from lenrl.config import load_config
    from lenrl.model.embedded import resolve_model

    assert method.target_len is not None
    cfg = load_config(method.algo, None, train_overrides(args, method, out / "runs" / method.name))
    low, high = method.target_len
    extra = ["--instruction", cfg.data.instruction, "--target-len", f"{low},{high}"]
    for label, model in ((START, resolve_model(_spec(args))), (method.name, checkpoint)):
        evaluate(args, model, label, out, dest=out / "evals" / LENGTH_CONTROL / label, extra=extra)


def evaluate(
    args: argparse.Namespace,
    model: str,
    label: str,
    out: Path,
    *,
    dest: Path | None = None,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """`lenrl eval` of `model` on the held-out problems into `dest` (default `<out>/evals/<label>`), unless
    its summary exists; `extra`: more eval arguments (target lengths). Plain evaluations of trained models
    get the start model as their AES baseline."""
    from lenrl.eval.report import load_results
    from lenrl.evaluate import main as eval_main

    dest = dest or out / "evals" / label
    if not _summary_path(dest).exists():
        argv = [
            "--model", model, "--label", label, "--benchmarks", _spec(args), "--limit", str(args.eval_limit),
            "--n", str(args.eval_n), "--temperature", "1.0", "--top-p", "1.0",
            "--max-tokens", str(args.eval_max_tokens), "--seed", str(args.seed), "--out", str(dest),
        ]  # fmt: skip
        if extra:
            argv += extra
        elif label != START:
            argv += ["--baseline", str(out / "evals" / START)]
        if eval_main(argv) != 0:
            raise LenrlError(f"evaluation of {label} failed (see above)")
    [summary] = load_results(str(dest))
    return summary


def _spec(args: argparse.Namespace) -> str:
    return args.testbed if args.testbed.startswith("testbed:") else f"testbed:{args.testbed}"


SETTING_KEYS = (
    "steps", "prompts_per_step", "n", "max_tokens", "cap", "lr", "seed", "eval_limit", "eval_n", "eval_max_tokens",
)  # fmt: skip


def settings_record(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Everything that defines the comparison's numbers: the testbed (canonical spec), the shared training
    and evaluation sizes, the extra overrides and each method's preset and overrides."""
    from lenrl.testbed.recipe import canonical, parse_spec

    return {
        "testbed": canonical(*parse_spec(_spec(args))),  # an unknown testbed fails here
        **{k: getattr(args, k) for k in SETTING_KEYS},
        "overrides": list(args.overrides),
        "methods": {name: METHODS[name].record() for name in names},
    }


def check_settings(out: Path, record: dict[str, Any]) -> None:
    """Refuse to resume `out` when it holds a comparison with other settings; store them on a first run.
    Methods only in the new run are added (a comparison grows method by method); a method in both must
    have the same record, and so must every shared setting."""
    path = out / "settings.json"
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise LenrlError(f"{path}: unreadable ({type(e).__name__}); use another --out or delete it") from None
        old_methods, new_methods = old.get("methods", {}), record["methods"]
        diff = sorted(k for k in set(old) | set(record) if k != "methods" and old.get(k) != record.get(k))
        diff += [
            f"methods.{m}" for m in sorted(set(old_methods) & set(new_methods)) if old_methods[m] != new_methods[m]
        ]
        if diff:
            raise LenrlError(f"{out}: holds a comparison with other settings ({', '.join(diff)}); use another --out")
        record = {**record, "methods": {**old_methods, **new_methods}}
    if record != old:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(record, indent=1))


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
        if out.exists() and not out.is_dir():
            raise LenrlError(f"--out: {out} is a file, not a directory")
        check_settings(out, settings_record(args, names))  # before any build, training or evaluation
        from lenrl.model.embedded import resolve_model

        start = resolve_model(_spec(args))
        evaluate(args, start, START, out)
        for name in names:
            run_method(args, METHODS[name], out)
            write_results(out, [START, *names[: names.index(name) + 1]], METHODS)
        print(f"lenrl testbed compare: {write_results(out, [START, *names], METHODS)}", flush=True)
        return 0

    return exit_code_of(run)

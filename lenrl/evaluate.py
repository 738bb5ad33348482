"""lenrl evaluation driver: `lenrl eval --model M [--model M2 ...] --benchmarks math500,gsm8k [options]`.

For each model: vLLM engines as Ray actors (the same `VLLMEngine` as training; several workers split the
questions), then for each benchmark `BenchmarkEval` writes `<out>/[<label>/]<benchmark>/samples.jsonl`,
`settings.json` and `summary.json`; then `report.md` and `plots/`. With several models, a comparison report
over all of them is written to `<out>/comparison.md`. Re-running the same command resumes.
`lenrl compare DIR [DIR ...] --out DEST` writes a comparison of finished evaluations.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of, interrupt_on_signals
from lenrl.files import atomic_write


def finite_float(text: str) -> float:
    """argparse type: a float that is not NaN or infinite (Python's float() accepts "nan" and "inf")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from lenrl.eval.benchmarks import BENCHMARKS

    p = argparse.ArgumentParser(prog="lenrl eval", description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--model", action="append", help="embedded:smollm2-135m (default), a local HF dir / checkpoint, or a hub id")
    a("--label", action="append", help="display name per --model (default: the directory name)")
    a("--benchmarks", default="math500", help=f"comma list: {', '.join(BENCHMARKS)}, or any name given --data")
    a("--data", action="append", default=[], help="NAME=PATH: a local JSONL/Parquet copy (problem/answer columns)")
    a("--limit", type=int, default=None, help="first N questions of each benchmark")
    a("--n", type=int, default=4, help="samples per question (avg@n, pass@k, maj@k)")
    a("--temperature", type=finite_float, default=0.6, help="0 = greedy")
    a("--top-p", type=finite_float, default=0.95)
    a("--max-tokens", type=int, default=512, help="generation cap (the longest budget)")
    a("--budgets", default="", help="comma list of increasing token budgets for accuracy vs budget")
    a("--force-tokens", type=int, default=32, help="tokens of a forced answer (budget forcing)")
    a("--force-text", default=None, help="text appended at the budget to force an answer")
    a("--think-prefix", default="", help='text pre-filling the response, e.g. "<think>\\n" (needs --thinking)')
    a("--instruction", default=None, help="appended to each question (default: the training instruction)")
    a(
        "--target-len",
        default=None,
        help="LOW,HIGH: each question gets a target length N ~ U{LOW..HIGH} (seeded), written into the prompt "
        "through the --instruction's {target_len} (L1: 'Think for {target_len} tokens.'); reports length-control error",
    )
    a("--system-prompt", default=None)
    a("--max-prompt-tokens", type=int, default=1024)
    a("--reward", default="math_correct", help="scoring reward: built-in name, module:fn or file.py:fn")
    a("--grader", default="math", help="verifier that decides each answer's correctness once (name or file.py:fn)")
    a("--fallback", default=None, help="math grader without a box: none | last_number (default: GSM8K last_number)")
    a(
        "--thinking",
        action="store_true",
        help="the model thinks first (R1-style): no `</think>`, no answer; budget forcing closes `</think>`",
    )
    a("--seed", type=int, default=0)
    a("--chunk", type=int, default=32, help="questions per generation call (the unit of resume)")
    a("--workers", type=int, default=1, help="vLLM engines (Ray actors) splitting the questions")
    a("--dtype", default="auto")
    a("--baseline", default=None, help="an earlier evaluation output dir: AES of every model against it")
    a("--out", default=None, help="output directory (default evals/eval-<timestamp>)")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace):  # -> EvalSettings
    from lenrl.eval.runner import EvalSettings

    try:
        budgets = tuple(int(x) for x in args.budgets.split(",") if x.strip())
    except ValueError:
        raise LenrlError(f"--budgets must be a comma list of integers, got {args.budgets!r}") from None
    kw: dict[str, Any] = {} if args.instruction is None else {"instruction": args.instruction}
    if args.target_len is not None:
        kw["target_len"] = parse_target_len(args.target_len)
    return EvalSettings(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        budgets=budgets,
        force_tokens=args.force_tokens,
        force_text=args.force_text,
        system_prompt=args.system_prompt,
        think_prefix=args.think_prefix,
        thinking=args.thinking,
        max_prompt_tokens=args.max_prompt_tokens,
        chunk=args.chunk,
        extra={"reward": args.reward, "grader": args.grader, "fallback": args.fallback},
        **kw,
    )


def parse_target_len(text: str) -> tuple[int, int]:
    """`--target-len LOW,HIGH` -> (LOW, HIGH); EvalSettings checks 0 < LOW <= HIGH and the instruction."""
    parts = [x.strip() for x in text.split(",")]
    try:
        low, high = (int(x) for x in parts)
    except ValueError:
        raise LenrlError(f"--target-len must be LOW,HIGH (two integers), got {text!r}") from None
    return low, high


def with_targets(problems: list, settings) -> list:  # list[Problem] -> list[Problem]
    """The problems with L1 target lengths when `--target-len` asks for them: the sampler of training's
    `data.target_len` (`assign_target_lengths`, seeded by --seed; a row's own `target_len` column wins)."""
    if settings.target_len is None:
        missing = [p.id for p in problems if "target_len" not in p.meta] if settings.uses_targets else []
        if missing:
            raise LenrlError(
                f"--instruction uses {{target_len}} but problem {missing[0]} has none: give --target-len LOW,HIGH"
            )
        return problems
    from lenrl.data.loaders import assign_target_lengths

    low, high = settings.target_len
    return assign_target_lengths(problems, low, high, seed=settings.seed)


def run(args: argparse.Namespace) -> int:
    from lenrl.eval.benchmarks import check_benchmark_names, load_benchmark, parse_data_args

    settings = settings_from(args)
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    if not names:
        raise LenrlError(f"--benchmarks names no benchmark (got {args.benchmarks!r})")
    data = args.data_map = parse_data_args(args.data, names)
    check_benchmark_names(names, data)
    models = args.model or ["embedded:smollm2-135m"]
    labels = args.label or [_default_label(m) for m in models]
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise LenrlError(f"--label: give one distinct label per --model, got {labels} for {len(models)} models")
    if args.workers < 1:
        raise LenrlError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out or f"evals/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    dirs = [out if len(models) == 1 else out / label for label in labels]
    check_before_ray(args, models, names, dirs, settings)
    # bad data fails before Ray
    problems = {b: with_targets(load_benchmark(b, data.get(b), limit=args.limit), settings) for b in names}
    baseline = _baseline(args.baseline) if args.baseline else None

    from lenrl.train import init_ray

    started = init_ray(None, args.workers)
    try:
        for model, label, d in zip(models, labels, dirs, strict=True):
            evaluate_model(model, label, d, problems, settings, args, baseline)
    finally:
        if started:
            import ray

            ray.shutdown()
    from lenrl.eval.comparison import write_comparison
    from lenrl.eval.report import write_report

    for d in dirs:
        print(f"lenrl eval: report {write_report(d)}")
    if len(models) > 1:
        print(f"lenrl eval: comparison {write_comparison(dirs, out)}")
    return 0


def check_before_ray(args: argparse.Namespace, models: list[str], names: list[str], dirs: list[Path], settings) -> None:
    """Everything about the command that can be wrong and is cheap to check, before Ray, vLLM or a model
    start (30-60 s): the model paths, the reward and grader with their parameters, and output
    directories that hold another evaluation."""
    from lenrl.config import RewardSpec
    from lenrl.config_checks import check_grader, check_reward
    from lenrl.eval.session import grader_spec

    for m in models:
        _check_model(m)
    budgets = [*settings.budgets, settings.max_tokens]
    check_reward(RewardSpec(args.reward), "--reward", budgets=budgets, thinking=args.thinking)
    for bench in names:  # the specs `Graders` grades with
        check_grader(grader_spec(args, bench), "--grader", thinking=args.thinking)
    record = json.loads(json.dumps(settings.record()))  # as settings.json holds it
    for d in dirs:
        if d.exists() and not d.is_dir():
            raise LenrlError(f"--out: {d} is a file, not a directory")
        for bench in names:
            _check_resumable(d / bench / "settings.json", record)


def _check_model(name: str) -> None:
    """A local path must hold a model (config.json); a name that is neither a path nor a valid Hugging
    Face id (`org/name`) is a missing directory, not a hub download that fails after Ray started."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from lenrl import storage
    from lenrl.model.embedded import EMBEDDED, check_model_uri

    path = Path(name).expanduser()
    if name == EMBEDDED:
        return
    if storage.is_uri(name):  # fetched into the cache when the evaluation starts
        check_model_uri(name, "--model")
        return
    if name.startswith("testbed:"):  # built (or taken from the cache) when the run starts
        from lenrl.testbed.recipe import parse_spec

        parse_spec(name)  # an unknown testbed or setting is a one-line error here
        return
    if path.exists():
        if not (path / "config.json").is_file():
            raise LenrlError(f"--model {name}: holds no model (no config.json)")
        return
    try:
        if name.startswith((".", "/", "~")):
            raise HFValidationError("a path")
        validate_repo_id(name)
    except HFValidationError:
        raise LenrlError(f"--model {name}: no such directory (and not a Hugging Face model id)") from None


def _check_resumable(path: Path, record: dict) -> None:
    """An output directory resumes only the evaluation it holds (`SampleFile.resume` enforces it too,
    once the engines are up; this says it before they start)."""
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise LenrlError(f"{path}: unreadable ({type(e).__name__}); use another --out or delete it") from None
    if old != record:
        diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        what = f"holds an evaluation with other settings ({', '.join(diff)})"
        raise LenrlError(f"{path.parent}: {what}; use another --out or delete it")


def evaluate_model(model: str, label: str, out: Path, problems: dict, settings, args, baseline: dict | None) -> None:
    from transformers import AutoTokenizer

    from lenrl.eval.session import Graders, benchmark_meta, context_length, eval_prompts, start_engines
    from lenrl.model.embedded import resolve_model

    model_path = resolve_model(model)
    tok = AutoTokenizer.from_pretrained(model_path)
    prompts = {b: eval_prompts(ps, tok, settings) for b, ps in problems.items()}  # too-long prompts fail here
    ctx = context_length(tok, [p for ps in prompts.values() for p in ps], settings)
    engines, actors = start_engines(model_path, settings, ctx, workers=args.workers, dtype=args.dtype)
    try:
        with Graders(args) as graders:
            for bench, ps in prompts.items():
                meta = benchmark_meta(label, model, bench, args.data_map)
                base = (baseline or {}).get(bench)
                summary = graders.evaluate(bench, ps, engines, tok, settings, out / bench, meta, base)
                # NaN / Infinity as Python writes them; report.py reads them back
                atomic_write(out / bench / "summary.json", json.dumps(summary, indent=1))
                acc, length = summary["accuracy"]["avg@k"], summary["length"]["all"]["mean"]
                print(
                    f"lenrl eval: {label} {bench}: avg@{settings.n} {acc:.3f}, mean length {length:.1f} tokens",
                    flush=True,
                )
    finally:
        import ray

        for a in actors:
            ray.kill(a)


def _baseline(path: str) -> dict[str, dict]:
    """benchmark -> {label, accuracy, length} of an earlier evaluation (for AES)."""
    from lenrl.eval.plots import accuracy_and_length
    from lenrl.eval.report import load_results

    out = {}
    for s in load_results(path):
        acc, length = accuracy_and_length(s)
        out[s["benchmark"]] = {"label": s.get("label") or Path(path).name, "accuracy": acc, "length": length}
    return out


def _default_label(model: str) -> str:
    return model.split(":", 1)[1] if model.startswith("embedded:") else Path(model.rstrip("/")).name


def compare_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lenrl compare", description="comparison report of finished evaluations")
    p.add_argument("dirs", nargs="+", help="evaluation output directories; the first is the AES baseline")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from lenrl.eval.comparison import write_comparison

    def compare() -> int:
        print(f"lenrl compare: {write_comparison(args.dirs, args.out)}")
        return 0

    return exit_code_of(compare)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_signals()  # SIGTERM shuts Ray down; samples.jsonl keeps whole questions (resume drops the rest)
    return exit_code_of(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

"""`lenrl edit directions --model M --out DIR [--data gsm8k --split train --limit 2000] [--short-below 100
--long-above 1000]`: ThinkEdit's reasoning-length direction (docs/thinkedit.md; Sun, Yan, Weng, EMNLP 2025,
§3; official `generate_response_gsm8k.py`, `extract_thinking_length_direction_gsm8k_{attn,mlp}.py`).

1. Generate one response per problem (the paper: GSM8K train, T 0.6, top-p 0.95, 4096 tokens) through
   the evaluation path (lenrl/eval/session.py): `DIR/generations/samples.jsonl`, graded and resumable.
2. Teacher-force prompt + thinking through transformers and average three sites over the thinking
   positions (lenrl/edit/activations.py): `DIR/activations.pt` and `DIR/examples.json`, cached under a key
   of the model and the generations, so other thresholds reuse steps 1 and 2.
3. Split by thinking length (short: < --short-below, long: > --long-above; responses that never close the
   thinking span are dropped, as the official code drops them) and take the long-minus-short means:
   `DIR/directions.pt` ({attn, mlp: [L, D], short, long: example indices, ...}) and `DIR/directions.md`.

Bad thresholds fail before anything starts; thresholds that leave a class empty fail after step 2 with the
thinking lengths seen, and write no directions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of, interrupt_on_signals
from lenrl.files import atomic_write

GENERATIONS, ACTIVATIONS, EXAMPLES, DIRECTIONS, REPORT = (
    "generations",
    "activations.pt",
    "examples.json",
    "directions.pt",
    "directions.md",
)
THINK_CLOSE = "</think>"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lenrl edit directions",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--model", required=True, help="HF dir, checkpoint, embedded:NAME or testbed:NAME")
    a("--out", required=True, help="output directory (re-running with other thresholds reuses it)")
    a("--data", default="gsm8k", help="a benchmark name, testbed:NAME, a .jsonl/.parquet path or a HF dataset id")
    a("--split", default="train")
    a("--limit", type=int, default=2000, help="first N problems (the paper: 2000)")
    a("--short-below", type=int, default=100, help="short: thinking length below this (the paper: 100)")
    a("--long-above", type=int, default=1000, help="long: thinking length above this (the paper: 1000)")
    a("--n", type=int, default=1, help="responses per problem (the paper: 1)")
    a("--temperature", type=float, default=0.6)
    a("--top-p", type=float, default=0.95)
    a("--max-tokens", type=int, default=4096)
    a("--instruction", default=None, help="appended to each question (default: lenrl eval's)")
    a("--thinking", action="store_true", help="the model thinks first (R1-style); as lenrl eval --thinking")
    a("--seed", type=int, default=0)
    a("--workers", type=int, default=1)
    a("--dtype", default="auto")
    a("--batch-size", type=int, default=8, help="examples per teacher-forced forward pass")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if not 0 < args.short_below <= args.long_above:
        raise LenrlError(f"need 0 < --short-below <= --long-above, got {args.short_below} and {args.long_above}")
    for k in ("limit", "n", "max_tokens", "workers", "batch_size"):
        if getattr(args, k) < 1:
            raise LenrlError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(args, k)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LenrlError(f"--out: {out} is a file, not a directory")


def eval_options(args: argparse.Namespace) -> argparse.Namespace:
    """The sampling and grading options as `lenrl eval` would parse them (one source of truth for both)."""
    from lenrl.evaluate import parse_args as eval_parse

    argv = ["--n", str(args.n), "--temperature", str(args.temperature), "--top-p", str(args.top_p)]
    argv += ["--max-tokens", str(args.max_tokens), "--seed", str(args.seed), "--workers", str(args.workers)]
    argv += ["--dtype", args.dtype, "--benchmarks", args.data] + (["--thinking"] if args.thinking else [])
    argv += ["--instruction", args.instruction] if args.instruction is not None else []
    opts = eval_parse(argv)
    opts.data_map = {}
    return opts


def load_data(args: argparse.Namespace) -> list:  # -> list[Problem]
    """`--data` as a benchmark's source at `--split`, a testbed task's split, or any lenrl data source."""
    from lenrl.data.loaders import load_problems
    from lenrl.eval.benchmarks import BENCHMARKS

    b = BENCHMARKS.get(args.data)
    if b is not None and b.hf_id is not None:
        q, a = b.hf_fields
        return load_problems(
            b.hf_id, split=args.split, question_field=q, answer_field=a, limit=args.limit, hf_config=b.hf_config
        )
    return load_problems(args.data, split=args.split, limit=args.limit, seed=args.seed)


def generate(args: argparse.Namespace, model_path: str, problems: list, out: Path) -> tuple[list, dict, Any]:
    """(records, prompt by question id, tokenizer): one response per problem and sample, graded."""
    from transformers import AutoTokenizer

    from lenrl.eval.session import Graders, benchmark_meta, context_length, eval_prompts, start_engines
    from lenrl.evaluate import settings_from
    from lenrl.train import init_ray

    opts = eval_options(args)
    settings = settings_from(opts)
    tok = AutoTokenizer.from_pretrained(model_path)
    prompts = eval_prompts(problems, tok, settings)
    started = init_ray(None, args.workers)
    engines, actors = start_engines(
        model_path, settings, context_length(tok, prompts, settings), workers=args.workers, dtype=args.dtype
    )
    try:
        with Graders(opts) as graders:
            meta = benchmark_meta("directions", args.model, args.data, {})
            graders.evaluate(args.data, prompts, engines, tok, settings, out / GENERATIONS, meta)
    finally:
        import ray

        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
    return read_samples(out / GENERATIONS / "samples.jsonl"), {p.problem.id: p for p in prompts}, tok


def read_samples(path: Path) -> list:  # -> list[SampleRecord]
    from lenrl.eval.samples import SampleRecord

    lines = path.read_text(encoding="utf-8").splitlines()
    return [SampleRecord.from_json(json.loads(line)) for line in lines if line.strip()]


def examples_of(records: list, prompts: dict, tok: Any) -> tuple[list, list[dict]]:
    """(Examples, one row per example: qid, sample, think_len, correct) for responses that close the
    thinking span; the thinking is the response up to and including `</think>`, re-tokenised (as the
    official code re-tokenises its regex span)."""
    from lenrl.edit.activations import Example

    examples, rows = [], []
    for r in records:
        if THINK_CLOSE not in r.text:
            continue
        thinking = r.text[: r.text.index(THINK_CLOSE) + len(THINK_CLOSE)]
        prompt = prompts[r.qid].token_ids
        ids = list(prompt) + tok(thinking, add_special_tokens=False)["input_ids"]
        examples.append(Example(ids, len(prompt), len(ids)))
        rows.append({"qid": r.qid, "sample": r.sample, "think_len": r.think_len, "correct": r.correct})
    return examples, rows


def cache_key(model_path: str, samples: Path) -> str:
    """The model directory's config and weights' sizes and times, and the generations' bytes."""
    h = hashlib.sha256(samples.read_bytes())
    for f in sorted(Path(model_path).glob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def activations(args: argparse.Namespace, model_path: str, records: list, prompts: dict, tok: Any, out: Path):
    """(Activations, example rows), from the cache when its key matches."""
    import torch
    from transformers import AutoModelForCausalLM

    from lenrl.edit.activations import Activations, mean_activations

    key = cache_key(model_path, out / GENERATIONS / "samples.jsonl")
    meta_path, acts_path = out / EXAMPLES, out / ACTIVATIONS
    if meta_path.exists() and acts_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            print(f"lenrl edit: activations from the cache ({acts_path})", flush=True)
            return Activations.load(acts_path), meta["examples"]
    examples, rows = examples_of(records, prompts, tok)
    if not examples:
        raise LenrlError(f"no response of {len(records)} closed its thinking span ({THINK_CLOSE}); raise --max-tokens")
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    print(f"lenrl edit: teacher-forcing {len(examples)} responses", flush=True)
    acts = mean_activations(model, examples, batch_size=args.batch_size)
    acts.save(acts_path)
    atomic_write(meta_path, json.dumps({"key": key, "model": args.model, "examples": rows}))  # last: marks it valid
    return acts, rows


def split(rows: list[dict], short_below: int, long_above: int) -> tuple[list[int], list[int]]:
    """Indices of the short (thinking < short_below) and long (> long_above) examples; a LenrlError naming
    the lengths seen when either class is empty."""
    short = [i for i, r in enumerate(rows) if r["think_len"] < short_below]
    long = [i for i, r in enumerate(rows) if r["think_len"] > long_above]
    if not short or not long:
        import statistics

        lens = sorted(r["think_len"] for r in rows)
        empty = "short (--short-below)" if not short else "long (--long-above)"
        raise LenrlError(
            f"the {empty} class is empty: thinking lengths of the {len(lens)} responses run {lens[0]}..{lens[-1]}"
            f" (median {statistics.median(lens):g}); choose --short-below {short_below} / --long-above {long_above}"
            " inside that range"
        )
    return short, long


def directions(acts: Any, rows: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    from lenrl.edit.thinkedit import length_direction

    short, long = split(rows, args.short_below, args.long_above)
    return {
        "attn": length_direction(acts.attn[long], acts.attn[short]),
        "mlp": length_direction(acts.mlp[long], acts.mlp[short]),
        "short": short,
        "long": long,
        "short_below": args.short_below,
        "long_above": args.long_above,
        "model": args.model,
    }


def write_report(out: Path, d: dict[str, Any], rows: list[dict]) -> None:
    def stats(idx: list[int]) -> str:
        acc = sum(rows[i]["correct"] for i in idx) / len(idx)
        mean = sum(rows[i]["think_len"] for i in idx) / len(idx)
        return f"{len(idx)} responses, mean thinking length {mean:.1f} tokens, accuracy {acc:.3f}"

    lines = [
        f"# Reasoning-length directions: {d['model']}",
        "",
        f"- short (thinking < {d['short_below']} tokens): {stats(d['short'])}",
        f"- long (thinking > {d['long_above']} tokens): {stats(d['long'])}",
        f"- all {len(rows)} responses that closed their thinking: {stats(list(range(len(rows))))}",
        "",
        "v = mean(long) − mean(short) per layer, over the thinking positions; `attn` is the residual stream after",
        "the attention block, `mlp` after the whole layer (ThinkEdit §3).",
        "",
        "| layer | ‖v attn‖ | ‖v mlp‖ |",
        "|---:|---:|---:|",
        *(
            f"| {i} | {a.norm():.4g} | {m.norm():.4g} |"
            for i, (a, m) in enumerate(zip(d["attn"], d["mlp"], strict=True))
        ),
    ]
    atomic_write(out / REPORT, "\n".join(lines) + "\n")


def load_directions(directory: str, num_layers: int, hidden: int) -> dict[str, Any]:
    """directions.pt of a `lenrl edit directions` run, checked against the model's shape."""
    import torch

    path = Path(directory) / DIRECTIONS
    if not path.is_file():
        raise LenrlError(f"--directions: {path} not found; run `lenrl edit directions` first")
    d = torch.load(path, weights_only=True)
    for site in ("attn", "mlp"):
        if tuple(d[site].shape) != (num_layers, hidden):
            raise LenrlError(
                f"--directions: {site} direction is {tuple(d[site].shape)}, the model needs ({num_layers}, {hidden})"
                " (taken from another model?)"
            )
    return d


def directions_main(argv: list[str]) -> int:
    def run() -> int:
        import torch

        from lenrl.model.embedded import resolve_model

        args = parse_args(argv)
        check_args(args)
        problems = load_data(args)  # a data error costs no model load
        out = Path(args.out)
        model_path = resolve_model(args.model)
        records, prompts, tok = generate(args, model_path, problems, out)
        acts, rows = activations(args, model_path, records, prompts, tok, out)
        d = directions(acts, rows, args)
        buf = io.BytesIO()
        torch.save(d, buf)
        atomic_write(out / DIRECTIONS, buf.getvalue())
        write_report(out, d, rows)
        counts = f"{len(d['short'])} short, {len(d['long'])} long"
        print(f"lenrl edit directions: {counts}; {out / DIRECTIONS} ({out / REPORT})")
        return 0

    interrupt_on_signals()
    return exit_code_of(run)

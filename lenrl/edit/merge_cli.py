"""`lenrl merge --base B --tuned T --out DIR [--method update_selective --keep 0.25 --scale 0.7 | --method
linear --weight 0.5]`: merge a tuned model into its base, tensor by tensor (lenrl/edit/merge.py), and write
a full HF model (weights and tokenizer) that transformers and vLLM load, plus `merge.md` and `merge.json`:
per tensor, the norm of the change and the fraction of its entries touched.

Both models load before anything is written; different tensor names, shapes or dtypes are one-line errors.
The output directory is written whole or not at all (lenrl.files.atomic_dir).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of
from lenrl.files import atomic_dir, atomic_write

REPORT = "merge.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    from lenrl.edit.merge import MERGES

    p = argparse.ArgumentParser(prog="lenrl merge", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the starting model (HF dir, checkpoint, testbed:NAME, hub id)")
    p.add_argument("--tuned", required=True, help="the model trained from it (e.g. runs/<dler-run>/checkpoint)")
    p.add_argument("--out", required=True, help="directory for the merged model (must not exist)")
    p.add_argument("--method", default="update_selective", help=f"one of {', '.join(MERGES.names())}")
    p.add_argument("--keep", type=float, default=0.25, help="update_selective: fraction of delta entries kept")
    p.add_argument("--scale", type=float, default=0.7, help="update_selective: factor on the kept delta")
    p.add_argument("--weight", type=float, default=0.5, help="linear: 0 = base, 1 = tuned")
    p.add_argument("--eval", default=None, help="`lenrl eval` options: evaluate base, tuned and merged together")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> dict[str, float]:
    """The merge function's parameters, checked before any model loads."""
    from lenrl.edit.merge import MERGES

    MERGES.get(args.method, "--method")
    if args.method == "update_selective":
        if not 0 < args.keep <= 1:
            raise LenrlError(f"--keep must be in (0, 1], got {args.keep}")
        if not math.isfinite(args.scale):
            raise LenrlError(f"--scale must be a finite number, got {args.scale}")
        return {"keep": args.keep, "scale": args.scale}
    if not math.isfinite(args.weight):
        raise LenrlError(f"--weight must be a finite number, got {args.weight}")
    return {"weight": args.weight}


def load(name: str, flag: str) -> tuple[str, Any]:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per outcome on stderr, no bars
    from lenrl.model.embedded import resolve_model

    try:
        path = resolve_model(name)
        return path, AutoModelForCausalLM.from_pretrained(path)
    except LenrlError as e:
        raise LenrlError(f"{flag}: cannot load model {name!r} ({str(e).removeprefix('model.name: ')})") from None
    except (OSError, ValueError) as e:
        raise LenrlError(f"{flag}: cannot load model {name!r}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def check_same_layout(base: dict[str, Any], tuned: dict[str, Any]) -> None:
    if set(base) != set(tuned):
        only = sorted(set(base) ^ set(tuned))
        raise LenrlError(f"--base and --tuned hold different tensors (e.g. {only[0]!r}): not the same architecture")
    for k, v in base.items():
        w = tuned[k]
        if v.shape != w.shape or v.dtype != w.dtype:
            raise LenrlError(
                f"tensor {k!r}: base {tuple(v.shape)} {v.dtype} but tuned {tuple(w.shape)} {w.dtype}; the models differ"
            )


def merge_state(base: dict[str, Any], tuned: dict[str, Any], method: str, params: dict[str, float]) -> tuple:
    """(merged state dict, per-tensor report rows); tied tensors (one storage, two names: the embedding
    and the output layer of a tied model) appear under both names, with the same values."""
    from lenrl.edit.merge import MERGES

    fn = MERGES.bind(method, params)
    merged: dict[str, Any] = {}
    rows = []
    for k, v in base.items():
        new = fn(v, tuned[k])
        change = (new.float() - v.float()).reshape(-1)
        delta = (tuned[k].float() - v.float()).reshape(-1)
        rows.append(
            {
                "tensor": k,
                "numel": v.numel(),
                "touched": int((change != 0).sum()),
                "delta_norm": float(delta.norm()),
                "change_norm": float(change.norm()),
            }
        )
        merged[k] = new
    return merged, rows


def write_report(
    out: Path, args: argparse.Namespace, params: dict[str, float], rows: list[dict], evals: list[str] | None = None
) -> None:
    total, touched = sum(r["numel"] for r in rows), sum(r["touched"] for r in rows)
    summary = {"base": args.base, "tuned": args.tuned, "method": args.method, "params": params}
    summary |= {"parameters": total, "touched": touched, "touched_fraction": touched / max(total, 1)}
    atomic_write(out / "merge.json", json.dumps({**summary, "tensors": rows}, indent=1))
    lines = [
        f"# Merge: {args.method} {params}",
        "",
        f"base `{args.base}`, tuned `{args.tuned}`: {touched:,} of {total:,} parameters changed "
        f"({touched / max(total, 1):.1%}). Per tensor: the norm of Δ = tuned − base, and of what the merge added.",
        "",
        "| tensor | entries | changed | norm of Δ | norm of change |",
        "|---|---|---|---|---|",
        *(_row(r) for r in rows),
    ]
    if evals:  # the evaluation comes first: it is what a reader looks for
        lines[4:4] = ["## Base, tuned and merged (`lenrl eval`, outputs in eval/)", "", *evals, ""]
    atomic_write(out / REPORT, "\n".join(lines) + "\n")


def _row(r: dict) -> str:
    changed = r["touched"] / r["numel"]
    return f"| {r['tensor']} | {r['numel']} | {changed:.1%} | {r['delta_norm']:.4g} | {r['change_norm']:.4g} |"


def merge_main(argv: list[str]) -> int:
    def run() -> int:
        from lenrl.edit.evals import EVAL_DIR, eval_argv, evaluate, table

        args = parse_args(argv)
        params = check_args(args)
        out = Path(args.out)
        if out.exists():
            raise LenrlError(f"--out: {out} already exists")
        eval_opts = None if args.eval is None else eval_argv(args.eval)
        base_path, base = load(args.base, "--base")
        tuned_path, tuned = load(args.tuned, "--tuned")
        base_sd, tuned_sd = base.state_dict(), tuned.state_dict()
        check_same_layout(base_sd, tuned_sd)
        merged, rows = merge_state(base_sd, tuned_sd, args.method, params)
        base.load_state_dict(merged)
        from transformers import AutoTokenizer

        with atomic_dir(out, prefix=".merge-") as tmp:
            base.save_pretrained(tmp)
            AutoTokenizer.from_pretrained(base_path).save_pretrained(tmp)
            write_report(tmp, args, params, rows)
        frac = sum(r["touched"] for r in rows) / max(sum(r["numel"] for r in rows), 1)
        print(f"lenrl merge: {args.method} {params}: {frac:.1%} of parameters changed; {out} ({out / REPORT})")
        if eval_opts is not None:
            models = [("base", base_path), ("tuned", tuned_path), ("merged", str(out))]
            evals = table(evaluate(models, eval_opts, out / EVAL_DIR))
            write_report(out, args, params, rows, evals)
            print("\n".join(evals), flush=True)
        return 0

    return exit_code_of(run)

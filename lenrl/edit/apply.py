"""`lenrl edit apply --model M --directions DIR --out EDITED [--heads 0.04 | --top-k K] [--eval OPTIONS]`:
ThinkEdit's weight edit (docs/thinkedit.md; ThinkEdit §4, official `find_short_thinking_attn_heads.py` and
`get_ThinkEdit_models.py`).

1. Score every attention head by how much it writes along the short-thinking direction u_ℓ = −v_ℓ/‖v_ℓ‖
   (v: the `attn` direction) on the short examples of the directions run (their cached o_proj inputs).
2. Edit the top heads: each one's o_proj column block loses its component along u_ℓ (W ← (I − ûûᵀ)W), so
   it can no longer write that direction. Nothing else changes.
3. Save the edited model whole (weights, config, tokenizer; written whole or not at all) with
   `thinkedit.md` / `thinkedit.json`: the heads, their scores, the norm of each change, the fraction of
   parameters touched. Then, with --eval, `lenrl eval` of the model before and after into
   `EDITED/eval/`, and the before/after table in thinkedit.md: accuracy, mean thinking length, accuracy of
   the shortest 5/10/20% of responses.

Every check (the model family's attention layout, directions of another model's shape, --heads or
--top-k out of range, the evaluation options, an existing --out) fails before the model is loaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of, interrupt_on_signals
from lenrl.files import atomic_dir, atomic_write

REPORT = "thinkedit.md"
DEFAULT_FRACTION = 0.04  # the EMNLP version: "~4% of heads"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lenrl edit apply",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--model", required=True, help="the model the directions were taken from")
    a("--directions", required=True, help="a `lenrl edit directions` output directory")
    a("--out", required=True, help="directory for the edited model (must not exist)")
    a("--heads", type=float, default=None, help=f"fraction of all heads to edit (default {DEFAULT_FRACTION})")
    a("--top-k", type=int, default=None, help="number of heads to edit (instead of --heads)")
    a("--layers", default="all", help="'all' or a comma list of layers the heads are chosen from")
    a("--eval", default=None, help="`lenrl eval` options: evaluate the model before and after the edit")
    return p.parse_args(argv)


def head_count(args: argparse.Namespace, layers: int, heads: int, candidates: int) -> int:
    """How many heads to edit: --top-k, or --heads as a fraction of all layers × heads (the paper's
    meaning), never more than the `candidates` heads of the --layers chosen."""
    from lenrl.edit.thinkedit import heads_for_fraction

    if args.heads is not None and args.top_k is not None:
        raise LenrlError("give --heads (a fraction) or --top-k (a count), not both")
    if args.top_k is not None:
        if not 1 <= args.top_k <= candidates:
            raise LenrlError(f"--top-k must be in 1..{candidates} (heads of the --layers chosen), got {args.top_k}")
        return args.top_k
    fraction = DEFAULT_FRACTION if args.heads is None else args.heads
    if not 0 < fraction <= 1:
        raise LenrlError(f"--heads must be a fraction in (0, 1], got {fraction}")
    k = heads_for_fraction(layers, heads, fraction)
    if k > candidates:
        raise LenrlError(f"--heads {fraction} means {k} heads; the --layers chosen have {candidates}")
    return k


def score_heads(model: Any, directions: dict, acts_dir: Path) -> tuple[Any, Any]:
    """(scores [L, H], u [L, D]) on the short examples' mean o_proj inputs."""
    import torch

    from lenrl.edit.activations import Activations
    from lenrl.edit.directions import ACTIVATIONS
    from lenrl.edit.layout import layout_of, o_proj
    from lenrl.edit.thinkedit import head_contributions, short_unit_direction

    layout = layout_of(model)
    acts = Activations.load(acts_dir / ACTIVATIONS).select(directions["short"])
    u = short_unit_direction(directions["attn"])
    W = torch.stack([o_proj(model, i).weight.detach() for i in range(layout.num_layers)])
    return head_contributions(acts.o_in, W, u, layout.num_heads), u


def write_report(out: Path, args: argparse.Namespace, record: dict, evals: list[str] | None = None) -> None:
    lines = [
        f"# ThinkEdit: {args.model}",
        "",
        f"{len(record['heads'])} of {record['total_heads']} attention heads edited ({record['head_fraction']:.1%});"
        f" {record['touched']:,} of {record['parameters']:,} parameters changed ({record['touched_fraction']:.3%}).",
        f"Directions: `{args.directions}` ({record['short']} short examples scored the heads);"
        f" heads chosen from layers {', '.join(map(str, record['layers']))}.",
        "Each edited head's o_proj block loses its component along the short-thinking direction u of its layer.",
        "",
        "| rank | layer | head | score | ‖ΔW‖ | ‖ûᵀW‖ before | after |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {i + 1} | {h['layer']} | {h['head']} | {h['score']:.4g} | {h['change_norm']:.4g} |"
            f" {h['before_along_u']:.4g} | {h['after_along_u']:.2g} |"
            for i, h in enumerate(record["heads"])
        ),
    ]
    if evals:
        lines += ["", "## Before and after (`lenrl eval`, outputs in eval/)", "", *evals]
    atomic_write(out / REPORT, "\n".join(lines) + "\n")


def edit(args: argparse.Namespace, model_path: str, d: dict, k: int, layers: list[int], out: Path) -> dict:
    """Load, score, edit and save; the record of thinkedit.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lenrl.edit.layout import layout_of
    from lenrl.edit.thinkedit import apply_thinkedit, select_heads

    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    layout = layout_of(model)
    scores, u = score_heads(model, d, Path(args.directions))
    # the top k among the chosen layers' heads, numbered back to the model's layers
    heads = [(layers[i], h) for i, h in select_heads(scores[layers], k)]
    changes = apply_thinkedit(model, heads, u)
    for c in changes:
        c["score"] = float(scores[c["layer"], c["head"]])
    total = sum(p.numel() for p in model.parameters())
    touched = len(heads) * layout.hidden_size * layout.head_dim  # each edited block is D × head_dim
    record = {
        "model": args.model, "directions": args.directions, "heads": changes, "total_heads": scores.numel(),
        "layers": layers,
        "head_fraction": len(heads) / scores.numel(), "parameters": total, "touched": touched,
        "touched_fraction": touched / total, "short": len(d["short"]),
    }  # fmt: skip
    with atomic_dir(out, prefix=".thinkedit-") as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(model_path).save_pretrained(tmp)
        atomic_write(tmp / "thinkedit.json", json.dumps(record, indent=1))
        write_report(tmp, args, record)
    return record


def apply_main(argv: list[str]) -> int:
    def run() -> int:
        from transformers import AutoConfig

        from lenrl.edit.directions import load_directions
        from lenrl.edit.evals import eval_argv, evaluate, table
        from lenrl.edit.layout import AttentionLayout
        from lenrl.edit.steer import layers_of
        from lenrl.model.embedded import resolve_model

        args = parse_args(argv)
        out = Path(args.out)
        if out.exists():
            raise LenrlError(f"--out: {out} already exists")
        eval_opts = None if args.eval is None else eval_argv(args.eval)
        model_path = resolve_model(args.model)
        layout = AttentionLayout.from_config(AutoConfig.from_pretrained(model_path))  # unsupported: fails here
        layers = layers_of(args.layers, layout.num_layers)
        k = head_count(args, layout.num_layers, layout.num_heads, len(layers) * layout.num_heads)
        d = load_directions(args.directions, layout.num_layers, layout.hidden_size)
        record = edit(args, model_path, d, k, layers, out)
        print(f"lenrl edit apply: {k} heads edited; {out} ({out / REPORT})", flush=True)
        if eval_opts is not None:
            rows = evaluate([("before", model_path), ("after", str(out))], eval_opts, out / "eval")
            write_report(out, args, record, table(rows))
            print("\n".join(table(rows)), flush=True)
        return 0

    interrupt_on_signals()
    return exit_code_of(run)

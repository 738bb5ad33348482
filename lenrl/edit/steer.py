"""`lenrl edit steer --model M --directions DIR --alphas -1,0,1 --out OUT [--site attn|mlp] [--layers all|0,2]
--eval OPTIONS`: add α·v_ℓ to the chosen layers' attention (or MLP) output at every position
and measure how thinking length and accuracy move with α (ThinkEdit §3.2, docs/thinkedit.md).

Each α becomes a model whose o_proj (or down_proj) carries the bias α·v_ℓ (thinkedit.add_steering_bias),
written under `OUT/models/`, so the real engine generates with it: one `lenrl eval` over all α (same
prompts, seeds and graders) into `OUT/eval/`, then `OUT/steer.md`, `steer.json` and `steer.png` (mean
thinking length and accuracy against α). Re-running resumes: built models and finished evaluations stay.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError, exit_code_of, interrupt_on_signals
from lenrl.files import atomic_dir, atomic_write

SITES = ("attn", "mlp")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lenrl edit steer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--model", required=True, help="the model the directions were taken from")
    a("--directions", required=True, help="a `lenrl edit directions` output directory")
    a("--alphas", default="-1,-0.5,0,0.5,1", help="comma list of steering strengths (negative: shorter)")
    a("--site", default="attn", choices=SITES, help="steer the attention output or the MLP output")
    a("--layers", default="all", help="'all' or a comma list of layer indices")
    a("--eval", required=True, help="`lenrl eval` options, e.g. '--benchmarks gsm8k --limit 200 --n 4'")
    a("--out", required=True)
    return p.parse_args(argv)


def alphas_of(text: str) -> list[float]:
    import math

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LenrlError(f"--alphas: not a comma list of numbers: {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values) or len(set(values)) != len(values):
        raise LenrlError(f"--alphas: need distinct finite numbers, got {text!r}")
    return sorted(values)


def layers_of(text: str, num_layers: int) -> list[int]:
    if text == "all":
        return list(range(num_layers))
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise LenrlError(f"--layers: 'all' or a comma list of layer indices, got {text!r}") from None
    if not layers or not all(0 <= i < num_layers for i in layers):
        raise LenrlError(f"--layers: indices must be in 0..{num_layers - 1}, got {text!r}")
    return layers


def steered_model(model_path: str, v_LD: Any, alpha: float, layers: list[int], site: str, out: Path) -> None:
    """The model with α·v_ℓ added at `site` on `layers`, saved whole (weights, config, tokenizer) at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lenrl.edit.thinkedit import add_steering_bias, steering_bias

    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    add_steering_bias(model, steering_bias(v_LD, alpha, layers), site)
    with atomic_dir(out, prefix=".steer-") as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(model_path).save_pretrained(tmp)


def write_outputs(out: Path, args: argparse.Namespace, rows: list[dict], alphas: list[float]) -> None:
    from lenrl.edit.evals import table

    atomic_write(out / "steer.json", json.dumps({"site": args.site, "layers": args.layers, "rows": rows}, indent=1))
    lines = [
        f"# Steering {args.model} along its reasoning-length direction",
        "",
        f"α·v added to the {args.site} output of layers {args.layers}; directions from `{args.directions}`.",
        "Negative α pushes toward short thinking, positive toward long.",
        "",
        *table(rows, first="α"),
        "",
        "![thinking length and accuracy against α](steer.png)",
    ]
    atomic_write(out / "steer.png", plot(rows, alphas))
    atomic_write(out / "steer.md", "\n".join(lines) + "\n")


def plot(rows: list[dict], alphas: list[float]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    acc_ax = ax.twinx()
    for bench in sorted({r["benchmark"] for r in rows}):
        rs = {r["label"]: r for r in rows if r["benchmark"] == bench}
        xs = [a for a in alphas if label(a) in rs]
        ax.plot(xs, [rs[label(a)]["think_mean"] for a in xs], "o-", label=f"{bench}: thinking")
        acc_ax.plot(xs, [rs[label(a)]["accuracy"] for a in xs], "s--", label=f"{bench}: accuracy")
    ax.set(xlabel="α", ylabel="mean thinking length (tokens)")
    acc_ax.set(ylabel="accuracy", ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    acc_ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def label(alpha: float) -> str:
    return f"{alpha:g}"


def steer_main(argv: list[str]) -> int:
    def run() -> int:
        from transformers import AutoConfig

        from lenrl.edit.directions import load_directions
        from lenrl.edit.evals import eval_argv, evaluate
        from lenrl.edit.layout import AttentionLayout
        from lenrl.model.embedded import resolve_model

        args = parse_args(argv)
        alphas = alphas_of(args.alphas)
        eval_opts = eval_argv(args.eval)
        model_path = resolve_model(args.model)
        layout = AttentionLayout.from_config(AutoConfig.from_pretrained(model_path))
        if layout.model_type != "llama":
            raise LenrlError(f"steering needs a Llama-family model (a bias on o_proj), got {layout.model_type!r}")
        layers = layers_of(args.layers, layout.num_layers)
        v = load_directions(args.directions, layout.num_layers, layout.hidden_size)[args.site]
        out = Path(args.out)
        models = []
        for a in alphas:
            path = out / "models" / f"alpha_{label(a)}"
            if a != 0 and not path.exists():
                steered_model(model_path, v, a, layers, args.site, path)
            models.append((label(a), model_path if a == 0 else str(path)))
        rows = evaluate(models, eval_opts, out / "eval")
        write_outputs(out, args, rows, alphas)
        print(f"lenrl edit steer: {out / 'steer.md'}")
        return 0

    interrupt_on_signals()
    return exit_code_of(run)

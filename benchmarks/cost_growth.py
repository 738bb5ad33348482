"""How the cost of a lenrl step grows with group size and response budget, and how much rollout time a
length-control method saves, in one invocation:

    python benchmarks/cost_growth.py                      # testbed:default, 4 prompts, 4 steps per point
    python benchmarks/cost_growth.py --groups 2 --max-tokens 32 --steps 1 --control-steps 2   # smoke

Every point is one `python lenrl/train.py` run (bench_runs.run_lenrl), figures from its metrics.jsonl:
1. group size G in --groups at --base-tokens, then the budget in --max-tokens at G = --base-group (grpo);
2. length control at G = --base-group: grpo with the budget --control-tokens, DLER with its truncation cap
   (--dler-cap, the preset's) and the curriculum preset, whose budget decays from --control-tokens to its
   end value over --control-steps.
Means drop the first step (warm-up). Writes results.md, results.json and cost_growth.png in --out (default
benchmarks/results/cost_growth-<model>-<timestamp>/).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import bench_runs as br

HERE = Path(__file__).resolve().parent
KEYS = ("time/step_s", "time/generate_s", "time/update_s", "len/mean")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="testbed:default", help="testbed:NAME or embedded:smollm2-135m")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--steps", type=int, default=4, help="steps per sweep point")
    p.add_argument("--groups", type=int, nargs="+", default=[2, 4, 8, 16], help="group sizes G")
    p.add_argument("--max-tokens", type=int, nargs="+", default=[64, 128, 256, 512], help="budgets")
    p.add_argument("--base-group", type=int, default=4, help="G of the budget sweep and length control")
    p.add_argument("--base-tokens", type=int, default=128, help="budget of the group-size sweep")
    p.add_argument("--control-tokens", type=int, default=256, help="grpo's budget, curriculum's start (> 87)")
    p.add_argument("--dler-cap", type=int, default=80, help="DLER's truncation cap (the preset's)")
    p.add_argument("--control-steps", type=int, default=8, help="steps of each length-control run")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each run")
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def run_point(out: Path, name: str, algo: str, shape: br.RunShape, timeout_s: float) -> dict[str, Any]:
    """One lenrl run; its step means and per-step series, or {"error": one line}."""
    config, _ = br.model_config(shape.model)
    overrides = br.fit_context(algo, config, br.shape_overrides(shape))
    try:
        rows = br.run_lenrl(out, name, algo, config, overrides, timeout_s=timeout_s)
    except RuntimeError as e:
        print(f"  {e}", flush=True)
        return {"error": str(e)}
    kept = br.measured_rows(rows)
    means = {k: br.mean(r.get(k, br.NAN) for r in kept) for k in KEYS}
    series = {k: [r.get(k, br.NAN) for r in rows] for k in (*KEYS, "len/budget_mean", "len/truncated_frac")}
    return {"algo": algo, "group": shape.group, "max_tokens": shape.max_tokens, **means, "series": series}


def sweeps(a: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    base = br.RunShape(a.model, a.prompts, a.base_group, a.base_tokens, a.steps)
    points: dict[str, dict[str, Any]] = {}
    grid = [replace(base, group=g) for g in a.groups] + [replace(base, max_tokens=t) for t in a.max_tokens]
    for shape in grid:
        key = f"G{shape.group}_T{shape.max_tokens}"
        if key not in points:  # the two sweeps share one point
            points[key] = run_point(out, key, "grpo", shape, a.timeout)
    control = replace(base, steps=a.control_steps)
    for name, algo, tokens in (
        ("grpo_uncapped", "grpo", a.control_tokens),
        ("dler_cap", "dler", a.dler_cap),
        ("curriculum", "curriculum", a.control_tokens),
    ):
        points[name] = run_point(out, name, algo, replace(control, max_tokens=tokens), a.timeout)
    return points


def report(res: dict[str, Any]) -> str:
    a, pts = res["settings"], res["points"]

    def row(label: str, key: str) -> list[Any]:
        p = pts.get(key, {})
        if "error" in p:
            return [label, f"failed: {p['error']}", "", "", ""]
        return [label, *(p.get(k, br.NAN) for k in KEYS)]

    head = ["run", "s/step", "generate s", "update s", "mean resp len"]
    groups = [row(f"G={g}, {a['base_tokens']} tokens", f"G{g}_T{a['base_tokens']}") for g in a["groups"]]
    budgets = [row(f"G={a['base_group']}, {t} tokens", f"G{a['base_group']}_T{t}") for t in a["max_tokens"]]
    control = [
        row(f"grpo, {a['control_tokens']} tokens", "grpo_uncapped"),
        row(f"DLER, truncation cap {a['dler_cap']}", "dler_cap"),
        row(f"curriculum, {a['control_tokens']} -> end budget", "curriculum"),
    ]
    return (
        "\n".join(
            [
                f"# How lenrl's step cost grows: {a['model']}, {a['prompts']} prompts per step",
                "",
                f"- date: {res['date']}; machine: {res['machine']['cpus']} CPUs; "
                f"versions: {', '.join(f'{k} {v}' for k, v in res['versions'].items())}",
                f"- command: `{res['command']}`",
                f"- means over steps 2..N of each run (N = {a['steps']} in the sweeps, {a['control_steps']} "
                "under length control); DLER's dynamic sampling may draw more than one rollout batch per step",
                "",
                "## Group size",
                "",
                br.md_table(head, groups),
                "",
                "## Response budget",
                "",
                br.md_table(head, budgets),
                "",
                "## Length control: rollout time saved",
                "",
                br.md_table(head, control),
                "",
                "![cost growth](cost_growth.png)",
            ]
        )
        + "\n"
    )


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, pts = res["settings"], res["points"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, xs, keys, xlabel in (
        (axes[0], a["groups"], [f"G{g}_T{a['base_tokens']}" for g in a["groups"]], "group size G"),
        (axes[1], a["max_tokens"], [f"G{a['base_group']}_T{t}" for t in a["max_tokens"]], "max tokens"),
    ):
        for k, label in (("time/step_s", "step"), ("time/generate_s", "generate"), ("time/update_s", "update")):
            ax.plot(xs, [pts[key].get(k, br.NAN) for key in keys], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per step")
        ax.legend()
    for key, label in (("grpo_uncapped", "grpo"), ("dler_cap", "DLER cap"), ("curriculum", "curriculum")):
        series = pts[key].get("series", {}).get("time/generate_s", [])[1:]  # step 1 is warm-up
        axes[2].plot(range(2, len(series) + 2), series, marker="o", label=label)
    axes[2].set_xlabel("step (from 2: step 1 is warm-up)")
    axes[2].set_ylabel("generate seconds")
    axes[2].legend()
    fig.suptitle(f"lenrl step cost, {a['model']}, {a['prompts']} prompts per step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(a.out) if a.out else HERE / "results" / f"cost_growth-{a.model.replace(':', '_')}-{stamp}"
    br.fresh_dir(out)
    print(f"cost_growth: {a.model}; results in {out}", flush=True)
    res: dict[str, Any] = {
        "settings": {**vars(a), "out": str(out)},
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": br.versions(),
        "machine": br.machine(),
    }
    res["points"] = sweeps(a, out)
    text = report(res)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(br.finite_json(res), indent=1))
    plot(res, out / "cost_growth.png")
    print(text)
    print(f"cost_growth: wrote {out / 'results.md'}, results.json and cost_growth.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

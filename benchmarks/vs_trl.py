"""lenrl's training speed against TRL's GRPOTrainer and against its own parts' ceilings, on identical settings,
in one invocation:

    python benchmarks/vs_trl.py                                   # SmolLM2-135M on arith: 4 x 4 x 128, 4 steps
    python benchmarks/vs_trl.py --model testbed:default --prompts 2 --group 2 --max-tokens 16 --steps 2
    python benchmarks/vs_trl.py --trl-vllm                        # also try TRL with vLLM in colocate mode

Contenders, each in its own process (its peak memory is its own):
1. lenrl: `python lenrl/train.py --algo grpo ...`, figures from the run's metrics.jsonl;
2. TRL GRPOTrainer, transformers generation (and with --trl-vllm, vLLM colocate), fp32 on CPU, beta 0, the
   same clip, advantage and loss aggregation as lenrl's grpo preset, graded by lenrl's own grader;
3. a bare vllm.LLM with lenrl's engine options, generating the same requests;
4. a plain fine-tuning step (forward with labels, backward, AdamW) of the RL update's shape;
5. an fp32 matmul on every core: the machine's peak FLOP/s, against which learner FLOP/s (6 x parameters x
   learner tokens/s) are set.
Every contender gets the same prompts, rendered and drawn by lenrl's own data code. Means drop the first step
(warm-up) when there are two or more. Prints a Markdown table and writes results.md and results.json in --out
(default benchmarks/results/vs_trl-<model>-<timestamp>/). The SmolLM2 default runs for roughly half an hour
on 2 cores (lenrl and TRL each take minutes per step there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_runs as br

HERE = Path(__file__).resolve().parent
ALGO = "grpo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded:smollm2-135m", help="embedded:smollm2-135m or testbed:NAME")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--group", type=int, default=4, help="samples per prompt (G)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=4, help="optimizer steps (one rollout batch each)")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results directory (default benchmarks/results/vs_trl-...)")
    p.add_argument("--skip-trl", action="store_true", help="leave TRL out")
    p.add_argument("--trl-vllm", action="store_true", help="also run TRL with vLLM in colocate mode")
    p.add_argument("--plain-reps", type=int, default=3, help="timed plain fine-tuning steps (after a warm-up)")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each contender")
    return p.parse_args(argv)


def default_out(model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return HERE / "results" / f"vs_trl-{model.replace(':', '_').replace('/', '_')}-{stamp}"


def run_child(name: str, spec_path: Path, out: Path, timeout_s: float, env: dict[str, str] | None = None) -> dict:
    """One contender in its own process; its figures, or {"error": one line} when it fails."""
    result, log = out / f"{name}.json", out / f"{name}.log"
    cmd = [sys.executable, str(HERE / "contenders.py"), name, str(spec_path), str(result)]
    print(f"  {name}: running (log {log})", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, **(env or {})}
    with log.open("w") as f:
        try:
            proc = subprocess.run(cmd, cwd=br.REPO, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s, env=env)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0 or not result.exists():
        reason = f"timed out after {timeout_s:.0f} s" if code == -1 else br.last_line(log)
        print(f"  {name}: failed: {reason}", flush=True)
        return {"error": reason}
    print(f"  {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(result.read_text())


def lenrl_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    m = br.step_means(rows)
    return {
        "s_per_step": m["time/step_s"],
        "generate_s": m["time/generate_s"],
        "update_s": m["time/update_s"],
        "gen_tok_s": m["time/gen_tokens_per_s"],
        "learner_tok_s": m["time/learner_tokens_per_s"],
        "pad_frac": m["actor/pad_frac"],
        "weight_sync_s": m["time/weight_sync_s"],
        "peak_rss_gib": m["mem/learner_peak_gib"],
        "rollout_peak_rss_gib": m["mem/rollout_peak_gib"],
        "mean_len": m["len/mean"],
        "steps": rows,
    }


def ratio(num: float, den: float) -> float:
    return num / den if math.isfinite(num) and math.isfinite(den) and den > 0 else math.nan


def ratios(c: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each headline ratio with its target: value, target text, met (None when it could not be computed)."""
    lenrl, trl, bare, plain, mm = (c.get(k, {}) for k in ("lenrl", "trl", "vllm", "plain", "matmul"))
    nan = math.nan
    peak, params = mm.get("peak_flops", nan), mm.get("parameters", nan)
    out = {
        "trl_s_per_step / lenrl_s_per_step": (ratio(trl.get("s_per_step", nan), lenrl.get("s_per_step", nan)), 2.0),
        "lenrl_learner_tok_s / plain_step_tok_s": (
            ratio(lenrl.get("learner_tok_s", nan), plain.get("learner_tok_s", nan)),
            0.9,
        ),
        "lenrl_rollout_tok_s / bare_vllm_tok_s": (ratio(lenrl.get("gen_tok_s", nan), bare.get("gen_tok_s", nan)), 0.9),
        "lenrl_pad_frac": (lenrl.get("pad_frac", nan), -0.10),  # negative: an upper bound
        "lenrl_learner_flops / peak": (ratio(6 * params * lenrl.get("learner_tok_s", nan), peak), None),
        "plain_step_flops / peak": (ratio(6 * params * plain.get("learner_tok_s", nan), peak), None),
    }
    result = {}
    for name, (value, target) in out.items():
        met = None
        if target is not None and math.isfinite(value):
            met = value < -target if target < 0 else value >= target
        text = "—" if target is None else (f"< {-target:g}" if target < 0 else f">= {target:g}")
        result[name] = {"value": value, "target": text, "met": met}
    return result


COLUMNS = (
    ("s/opt step", "s_per_step"),
    ("generate s", "generate_s"),
    ("update s", "update_s"),
    ("gen tok/s", "gen_tok_s"),
    ("learner tok/s", "learner_tok_s"),
    ("pad frac", "pad_frac"),
    ("weight sync s", "weight_sync_s"),
    ("peak RSS GiB", "peak_rss_gib"),
    ("mean resp len", "mean_len"),
)
MET = {True: "yes", False: "NO", None: "—"}
LABELS = {
    "lenrl": "lenrl",
    "trl": "TRL GRPOTrainer (transformers generate)",
    "trl_vllm": "TRL GRPOTrainer (vLLM colocate)",
    "vllm": "bare vLLM engine",
    "plain": "plain fine-tuning step",
}


def report(res: dict[str, Any]) -> str:
    c, s = res["contenders"], res["settings"]
    rows = []
    for key, label in LABELS.items():
        if key not in c:
            continue
        if "error" in c[key]:
            rows.append([label, f"failed: {c[key]['error']}", *[""] * (len(COLUMNS) - 1)])
        else:
            rows.append([label, *[c[key].get(k, math.nan) for _, k in COLUMNS]])
    lines = [
        f"# lenrl vs TRL: {s['model']}, {s['prompts']} prompts x {s['group']} samples x {s['max_tokens']} tokens, "
        f"{s['steps']} steps",
        "",
        f"- date: {res['date']}; machine: {res['machine']['cpus']} CPUs, {res['machine']['platform']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in res['versions'].items())}",
        f"- command: `{res['command']}`",
        f"- lenrl command: `{res['lenrl_command']}`",
        f"- TRL generation mode: {res['trl_mode']}",
        f"- means over steps 2..{s['steps']} (step 1 is warm-up)"
        if s["steps"] >= 2
        else "- one step: nothing dropped as warm-up",
        "",
        br.md_table(["contender", *[h for h, _ in COLUMNS]], rows),
        "",
        br.md_table(
            ["ratio", "value", "target", "met"],
            [[k, r["value"], r["target"], MET[r["met"]]] for k, r in res["ratios"].items()],
        ),
        "",
        *[f"- {n}" for n in res["notes"]],
    ]
    return "\n".join(lines) + "\n"


def notes(res: dict[str, Any]) -> list[str]:
    c, s = res["contenders"], res["settings"]
    mm, plain, trl = c.get("matmul", {}), c.get("plain", {}), c.get("trl", {})
    out = [
        f"micro-batch {s['micro_batch']} sequences for lenrl (train.micro_batch_size), the plain step and TRL "
        f"(per-device batch x gradient accumulation = prompts x group: one generation, one optimizer step)",
        "TRL: loss_type grpo (= seq_mean_token_mean), scale_rewards group, epsilon = lenrl's clip, beta 0, constant "
        "lr, AdamW (adamw_torch), grad clip as lenrl; its advantage divides by std + 1e-4 where lenrl's grpo uses 1e-6",
        "bare vLLM: lenrl's engine options (fp32, enforce_eager, no chunked prefill, max_num_seqs 64, seeded requests) "
        "but no log-probs, no Ray actor and no weight push",
        f"plain step: {plain.get('batch', '?')} x {plain.get('seq_len', '?')} random tokens (mean prompt length + "
        "lenrl's mean response length), no padding",
        f"FLOP/s = 6 x {mm.get('parameters', math.nan):,.0f} parameters x learner tokens/s; peak = fp32 torch.mm "
        f"{mm.get('n', '?')}^3 on {mm.get('threads', '?')} threads: {mm.get('peak_flops', math.nan) / 1e9:.1f} GFLOP/s",
        "lenrl peak RSS is the learner's (mem/learner_peak_gib); the engine's is "
        f"{br.fmt(c.get('lenrl', {}).get('rollout_peak_rss_gib', math.nan))} GiB; NaN (—) marks a metric this lenrl "
        "version does not log",
    ]
    if trl and "error" not in trl:
        out.append(f"TRL tokenized the prompts as lenrl did: {trl['prompt_ids_match']}; drew them in lenrl's order: "
                   f"{trl['prompts_match']}")  # fmt: skip
    if "trl_vllm" in c and "error" in c["trl_vllm"]:
        out.append(f"TRL vLLM colocate mode failed: {c['trl_vllm']['error']}")
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = Path(a.out) if a.out else default_out(a.model)
    br.fresh_dir(out)
    shape = br.RunShape(a.model, a.prompts, a.group, a.max_tokens, a.steps, a.temperature, a.lr, a.seed)
    config, _ = br.model_config(a.model)
    overrides = br.fit_context(ALGO, config, br.shape_overrides(shape))
    cfg = br.resolved_config(ALGO, config, overrides)
    from lenrl.model.embedded import resolve_model

    model_path = resolve_model(a.model)
    tok, steps = br.drawn_prompts(cfg)
    print(f"vs_trl: {a.model} ({model_path}); results in {out}", flush=True)

    res: dict[str, Any] = {
        "settings": {**vars(a), "out": str(out), "micro_batch": min(cfg.train.micro_batch_size, a.prompts * a.group)},
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": br.versions(),
        "machine": br.machine(),
        "contenders": {},
    }
    lenrl_cmd = ["python", "lenrl/train.py", "--algo", ALGO, *(["--config", config] if config else []), *overrides]
    res["lenrl_command"] = shlex.join([*lenrl_cmd, f"output.dir={out}", "output.name=lenrl"])
    c = res["contenders"]
    try:
        c["lenrl"] = lenrl_row(br.run_lenrl(out, "lenrl", ALGO, config, overrides, timeout_s=a.timeout))
    except RuntimeError as e:
        print(f"  {e}", flush=True)
        c["lenrl"] = {"error": str(e)}

    mean_prompt = sum(len(p.token_ids) for step in steps for p in step) / sum(len(step) for step in steps)
    resp = c["lenrl"].get("mean_len", math.nan)
    loss = cfg.algo.loss.params
    spec = {
        "model_path": model_path,
        "steps": [[{"text": p.text, "token_ids": p.token_ids, "answer": p.problem.answer} for p in s] for s in steps],
        "group": a.group,
        "max_tokens": a.max_tokens,
        "temperature": a.temperature,
        "top_p": cfg.rollout.top_p,
        "lr": a.lr,
        "seed": a.seed,
        "micro_batch": res["settings"]["micro_batch"],
        "thinking": cfg.model.thinking,
        "grader": cfg.grader.name,
        "grader_params": cfg.grader.params,
        "max_model_len": cfg.rollout.max_model_len,
        "kv_cache_gib": cfg.rollout.cpu_kv_cache_gib,
        "grad_clip": cfg.train.grad_clip,
        "weight_decay": cfg.train.weight_decay,
        "clip_low": loss.get("clip_low", 0.2),
        "clip_high": loss.get("clip_high", 0.2),
        "batch": a.prompts * a.group,
        # the RL update's sequence: prompt + response (the whole budget when lenrl gave no length)
        "seq_len": round(mean_prompt + (resp if math.isfinite(resp) else a.max_tokens)),
        "reps": a.plain_reps,
        "matmul_n": a.matmul_n,
        "matmul_reps": 10,
        "work_dir": str(out / "trl_work"),
    }
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    from lenrl.rollout.vllm_engine import engine_actor_env

    names = [*(() if a.skip_trl else ("trl",)), *(("trl_vllm",) if a.trl_vllm else ()), "vllm", "plain", "matmul"]
    for name in names:
        # the engine as lenrl's actor runs it: one OpenMP thread per core
        c[name] = run_child(name, spec_path, out, a.timeout, engine_actor_env() if name == "vllm" else None)
    modes = [c[k]["mode"] for k in ("trl", "trl_vllm") if k in c and "error" not in c[k]]
    res["trl_mode"] = ", ".join(modes) if modes else ("skipped" if a.skip_trl else "failed")
    res["ratios"] = ratios(c)
    res["notes"] = notes(res)
    text = report(res)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(br.finite_json(res), indent=1))
    print(text)
    print(f"vs_trl: wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

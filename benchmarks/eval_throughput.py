"""Evaluation throughput: `lenrl eval`'s path (vLLM engine as a Ray actor + the reward process pool) against
plain transformers `generate` (batched, left-padded, same sampling settings) + the same grading, on the
same questions of ../shared/data.

    python benchmarks/eval_throughput.py [--bench gsm8k_test] [--questions 16] [--n 2] [--max-tokens 128]

Both sides generate n samples per question with temperature 0.6 / top-p 0.95 and max_tokens, and grade with
math_correct in the reward pool. Prints questions/s and generated tokens/s for each, and the ratios. The
vLLM figure excludes the engine start-up (reported separately), the HF figure the model load.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from lenrl.config import RewardSpec, RolloutConfig
from lenrl.data.loaders import load_problems
from lenrl.data.prompts import PromptRenderer
from lenrl.eval.runner import BenchmarkEval, EvalSettings
from lenrl.model.embedded import resolve_model
from lenrl.records import Rollout
from lenrl.reward import reward_input_from_rollouts
from lenrl.reward_runner import RewardRunner

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def lenrl_side(path, tok, prompts, args, out: Path) -> tuple[float, int, float]:
    import ray

    from lenrl.rollout.vllm_engine import VLLMEngine, engine_actor_env
    from lenrl.train import init_ray
    from lenrl.workers.groups import RolloutGroup

    init_ray(None, 1)
    t0 = time.perf_counter()
    cfg = RolloutConfig(temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, max_model_len=1024)
    cls = ray.remote(num_cpus=1)(VLLMEngine).options(runtime_env={"env_vars": engine_actor_env()})
    actor = cls.remote(path, cfg, dtype="float32", seed=0)
    ray.get(actor.__ray_ready__.remote())
    startup = time.perf_counter() - t0
    s = EvalSettings(n=args.n, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, chunk=len(prompts))
    with RewardRunner([RewardSpec("math_correct", params={"fallback": "last_number"})], num_workers=2) as rewards:
        t0 = time.perf_counter()
        summary = BenchmarkEval(RolloutGroup([actor]), rewards, tok, s, extract=lambda t: None).run(
            prompts, out, meta={}
        )
        seconds = time.perf_counter() - t0
    ray.shutdown()
    return seconds, summary["throughput"]["generated_tokens"], startup


def hf_side(path, tok, prompts, args) -> tuple[float, int]:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(os.cpu_count() or 1)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with RewardRunner([RewardSpec("math_correct", params={"fallback": "last_number"})], num_workers=2) as rewards:
        t0 = time.perf_counter()
        batch = tok([p.text for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **batch,
                do_sample=True,
                temperature=0.6,
                top_p=0.95,
                max_new_tokens=args.max_tokens,
                num_return_sequences=args.n,
                pad_token_id=pad,
            )
        rollouts, tokens = [], 0
        width = batch["input_ids"].shape[1]
        for i, row in enumerate(out[:, width:].tolist()):
            ids = row[: row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row
            tokens += len(ids)
            q = prompts[i // args.n]
            rollouts.append(
                Rollout(
                    i // args.n,
                    q.token_ids,
                    ids,
                    [],
                    "stop",
                    args.max_tokens,
                    0,
                    tok.decode(ids, skip_special_tokens=True),
                    0,
                )
            )
        rows = [prompts[r.group_id] for r in rollouts]
        rewards.score(
            reward_input_from_rollouts(
                rollouts, [p.text for p in rows], [p.problem.answer for p in rows], [p.problem.meta for p in rows]
            )
        )
        return time.perf_counter() - t0, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="gsm8k_test")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", default="/tmp/lenrl-eval-throughput")
    args = ap.parse_args()
    path = resolve_model("embedded:smollm2-135m")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    problems = load_problems(str(DATA / f"{args.bench}.jsonl"), limit=args.questions)
    prompts = PromptRenderer(tok, EvalSettings().instruction, 1024)(problems)
    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    v_s, v_tok, startup = lenrl_side(path, tok, prompts, args, Path(args.out))
    h_s, h_tok = hf_side(path, tok, prompts, args)
    q = len(prompts)
    print(f"{q} questions x {args.n} samples, max_tokens {args.max_tokens}, SmolLM2-135M fp32, {os.cpu_count()} CPUs")
    print(
        f"lenrl eval (vLLM): {v_s:7.1f} s  {q / v_s:6.3f} questions/s  {v_tok / v_s:7.1f} tokens/s  "
        f"({v_tok} tokens; engine start {startup:.1f} s not included)"
    )
    print(f"HF generate      : {h_s:7.1f} s  {q / h_s:6.3f} questions/s  {h_tok / h_s:7.1f} tokens/s  ({h_tok} tokens)")
    print(f"ratio (lenrl / HF): questions/s {h_s / v_s:.2f}x, tokens/s {(v_tok / v_s) / (h_tok / h_s):.2f}x")


if __name__ == "__main__":
    main()

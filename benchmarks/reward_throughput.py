"""Grading throughput: lenrl's RewardRunner (process pool, math grader + math_correct) against a plain loop
over math-verify in one process, on 5000 (completion, gold) pairs built from ../shared/data; then the cost
of one training step's rewards: DA-DLER's reward list (math_correct + truncation + difficulty_truncation)
on 64-sample batches.

    python benchmarks/reward_throughput.py [--pairs 5000] [--workers 2] [--batches 10]

Pairs: gold answers of MATH500, MATH train and GSM8K test; half the completions box the gold answer in
a sentence, a quarter box a perturbed answer, a quarter give no box. Prints pairs/s and the ratio, and
the median and mean seconds per 64-sample DA-DLER batch (workers warm, not timed).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from lenrl.config import RewardSpec
from lenrl.reward import RewardInput
from lenrl.reward_runner import RewardRunner

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    golds = []
    for name in ("math500.jsonl", "math_train.jsonl", "gsm8k_test.jsonl"):
        golds += [json.loads(line)["answer"] for line in (DATA / name).read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    comps, answers = [], []
    for i in range(n):
        gold = rng.choice(golds)
        kind = i % 4
        if kind in (0, 1):
            comp = f"Let me work it out step by step. So the answer is \\boxed{{{gold}}}."
        elif kind == 2:
            comp = f"After simplifying we get \\boxed{{{gold}+1}}."
        else:
            comp = "I think the result is about forty-two, but I am not sure."
        comps.append(comp)
        answers.append(gold)
    return comps, answers


def plain_loop(comps: list[str], answers: list[str]) -> list[bool]:
    from math_verify import parse, verify

    out = []
    for comp, gold in zip(comps, answers, strict=False):
        out.append(bool(verify(parse(f"${gold}$"), parse(comp))))
    return out


def runner_input(comps: list[str], answers: list[str], group: int = 8) -> RewardInput:
    n = len(comps)
    return RewardInput(
        prompts=["q"] * n,
        completions=comps,
        completion_ids=[[0]] * n,
        answers=answers,
        meta=[{}] * n,
        response_len_B=torch.ones(n, dtype=torch.long),
        think_len_B=torch.zeros(n, dtype=torch.long),
        truncated_B=torch.zeros(n, dtype=torch.bool),
        group_id_B=torch.arange(n) // group,
        budget_B=torch.full((n,), 128),
    )


DA_DLER = [
    RewardSpec("math_correct"),
    RewardSpec("truncation", params={"truncation_reward_scale": 0.0}),
    RewardSpec("difficulty_truncation", params={"thresholds": [0.5], "cap_fractions": [0.5]}),
]


def da_dler_batches(workers: int, batches: int, batch: int = 64) -> list[float]:
    """Seconds per `batch`-sample batch (groups of 8) of DA-DLER's reward list, one warm runner."""
    comps, answers = build_pairs(batch * (batches + 1), seed=1)
    times = []
    with RewardRunner(DA_DLER, num_workers=workers, timeout_s=120.0) as runner:
        runner.score(runner_input(comps[:batch], answers[:batch]))  # start and warm the workers
        for b in range(1, batches + 1):
            sl = slice(b * batch, (b + 1) * batch)
            t0 = time.perf_counter()
            runner.score(runner_input(comps[sl], answers[sl]))
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=10, help="64-sample DA-DLER batches to time (0: skip)")
    args = ap.parse_args()
    comps, answers = build_pairs(args.pairs)

    t0 = time.perf_counter()
    loop_correct = plain_loop(comps, answers)
    t_loop = time.perf_counter() - t0

    with RewardRunner([RewardSpec("math_correct")], num_workers=args.workers, timeout_s=120.0) as runner:
        runner.score(runner_input(comps[:16], answers[:16]))  # start and warm the workers (not timed)
        t0 = time.perf_counter()
        out = runner.score(runner_input(comps, answers))
        t_pool = time.perf_counter() - t0

    n = args.pairs
    print(f"pairs: {n}  workers: {args.workers}")
    print(f"plain math-verify loop : {n / t_loop:8.1f} pairs/s ({t_loop:.1f} s), accuracy {sum(loop_correct) / n:.3f}")
    pool_acc = float(out.correct_B.float().mean())
    print(f"RewardRunner (pool)    : {n / t_pool:8.1f} pairs/s ({t_pool:.1f} s), accuracy {pool_acc:.3f}")
    print(f"ratio pool / loop      : {t_loop / t_pool:.2f}x")
    if args.batches:
        ts = da_dler_batches(args.workers, args.batches)
        med, mean = statistics.median(ts), statistics.mean(ts)
        print(f"DA-DLER rewards, 64 samples: median {med * 1000:.0f} ms, mean {mean * 1000:.0f} ms per batch")


if __name__ == "__main__":
    main()

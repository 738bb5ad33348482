"""Learner memory with and without LoRA: the tensors a `Learner` holds for a model (policy, KL reference,
gradients, AdamW moments) counted after one real update, and the process's peak resident memory.

    python benchmarks/learner_memory.py                      # the embedded SmolLM2-135M, fp32, kl_coef 0.04
    python benchmarks/learner_memory.py --model testbed:default --rank 8

Each configuration runs in its own process, so one's peak does not hide the other's. Prints one line per
configuration and the ratios; docs/benchmarks.md#learner-memory-with-and-without-lora keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(model: str, rank: int, tokens: int, seqs: int) -> dict[str, float]:
    """One learner, one update on `seqs` random sequences of `tokens` tokens; bytes by kind."""
    import torch

    sys.path.insert(0, str(REPO))
    from lenrl.config import AlgoConfig, LoraSettings, TrainConfig
    from lenrl.model.embedded import resolve_model
    from lenrl.records import Rollout, RolloutBatch
    from lenrl.trainer.batch import build_train_batch
    from lenrl.trainer.learner import Learner, MiniBatch

    path = resolve_model(model)
    learner = Learner(
        path, AlgoConfig(kl_coef=0.04), TrainConfig(lr=1e-5, micro_batch_size=seqs), dtype="float32",
        temperature=1.0, max_len=tokens, lora=LoraSettings(rank=rank),
    )  # fmt: skip
    vocab = learner.model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(3, vocab, (tokens,), generator=g).tolist() for _ in range(seqs)]
    rollouts = [Rollout(i // 2, [1, 2, 3], r, [-1.0] * tokens, "stop", tokens, 0, "", 0) for i, r in enumerate(ids)]
    batch = build_train_batch(RolloutBatch.from_rollouts(rollouts), torch.randn(seqs), pad_id=0)
    learner.update([MiniBatch.whole(batch)])

    def nbytes(ts) -> int:
        return sum(t.numel() * t.element_size() for t in ts)

    params = list(learner.model.parameters())
    moments = [v for s in learner.opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    return {
        "policy": nbytes(params),
        "reference": nbytes(learner.ref.parameters()) if learner.ref is not None else 0,
        "trainable": nbytes(p for p in params if p.requires_grad),
        "adam_moments": nbytes(moments),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded:smollm2-135m")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank of the LoRA configuration")
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--seqs", type=int, default=8)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process: one rank
    a = p.parse_args()
    if a.one is not None:
        print(json.dumps(measure(a.model, a.one, a.tokens, a.seqs)))
        return
    rows = {}
    for rank in (0, a.rank):
        cmd = [sys.executable, __file__, "--model", a.model, "--tokens", str(a.tokens), "--seqs", str(a.seqs)]
        out = subprocess.run([*cmd, "--one", str(rank)], capture_output=True, text=True, check=True).stdout
        rows[rank] = json.loads(out.strip().splitlines()[-1])
    mib = 2**20

    def held(r: dict) -> float:  # policy, reference, gradients (the size of the trainable weights), moments
        return r["policy"] + r["reference"] + r["trainable"] + r["adam_moments"]

    for rank, r in rows.items():
        name = "full" if rank == 0 else f"LoRA r={rank}"
        tensors = held(r)
        print(
            f"{name:10s} policy {r['policy'] / mib:7.1f} MiB  reference {r['reference'] / mib:7.1f}  grads "
            f"{r['trainable'] / mib:7.1f}  AdamW {r['adam_moments'] / mib:7.1f}  = {tensors / mib:7.1f} MiB held; "
            f"peak RSS {r['peak_rss'] / mib:7.1f} MiB"
        )
    full, lora = rows[0], rows[a.rank]
    rss = lora["peak_rss"] / full["peak_rss"]
    print(f"LoRA / full: tensors held {held(lora) / held(full):.2f}, peak RSS {rss:.2f}")


if __name__ == "__main__":
    main()

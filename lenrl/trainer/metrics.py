"""Per-step metrics: length always next to reward (docs/design.md 4.7 rule 12), written to JSONL,
TensorBoard and the console.

Keys are namespaced: reward/*, len/*, actor/*, sync/*, time/*.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from lenrl.errors import LenrlError
from lenrl.files import atomic_write
from lenrl.records import GenerationStats, RolloutBatch
from lenrl.trainer.learner import LearnerStats

LEARNER_KEYS = (
    "actor/loss",
    "actor/kl_ref",
    "actor/entropy",
    "actor/clipfrac",
    "actor/grad_norm",
    "sync/logp_abs_gap",
    "time/update_s",
    "actor/nonfinite_skipped",
    "time/learner_tokens_per_s",
    "actor/pad_frac",
    "mem/learner_peak_gib",
)


def rollout_metrics(rollouts: RolloutBatch, score_B: torch.Tensor, correct_B: torch.Tensor) -> dict[str, float]:
    """Reward and length statistics of one rollout batch. Lengths are response tokens; p90 is
    torch.quantile's linear interpolation."""
    len_B = rollouts.response_len_B.double()
    correct_B = correct_B.bool()
    return {
        "reward/mean": float(score_B.double().mean()),
        "reward/accuracy": float(correct_B.double().mean()),
        "len/mean": float(len_B.mean()),
        "len/p90": float(torch.quantile(len_B, 0.9)),
        "len/max": float(len_B.max()),
        "len/truncated_frac": float(rollouts.truncated_B.double().mean()),
        "len/correct_mean": float(len_B[correct_B].mean()) if correct_B.any() else math.nan,
        "len/think_mean": float(rollouts.think_len_B.double().mean()),
        "len/budget_mean": float(rollouts.budget_B.double().mean()),
    }


def learner_metrics(s: LearnerStats | None) -> dict[str, float]:
    """The update's statistics; NaN for every key on a step without an update (nothing kept to learn from)."""
    if s is None:
        return dict.fromkeys(LEARNER_KEYS, math.nan)
    values = (s.loss, s.kl_ref, s.entropy, s.clipfrac, s.grad_norm, s.logp_gap, s.seconds, s.nonfinite_skipped)
    # forward/backward positions (prompt + response) per second, padding excluded
    tok_s = s.fwd_tokens / max(s.seconds, 1e-9)
    values_f = (*map(float, values), tok_s, s.pad_frac, s.peak_rss_gib)
    return dict(zip(LEARNER_KEYS, values_f, strict=True))


def generation_metrics(g: GenerationStats) -> dict[str, float]:
    return {
        "time/generate_s": g.seconds,
        "time/gen_tokens_per_s": g.tokens / max(g.seconds, 1e-9),
        "mem/rollout_peak_gib": g.peak_rss_gib,
    }


class MetricsLogger:
    """Appends one JSON object per step (flushed, so a crash loses nothing logged), mirrors scalars to
    TensorBoard, and prints a one-line progress report with an ETA.

    Resuming from a checkpoint (`resume_at`: its step and metrics line count): the lines logged after the
    checkpoint are dropped, as are TensorBoard events past its step, so the resumed steps replace them."""

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        *,
        tensorboard: bool,
        out: TextIO | None = None,
        resume_at: tuple[int, int] | None = None,
        wandb: WandbRun | None = None,
    ):
        self.path = run_dir / "metrics.jsonl"
        self.lines, self.first_step = 0, 1
        if resume_at is not None:
            self.first_step, self.lines = resume_at[0] + 1, resume_at[1]
            kept = self.path.read_text().splitlines(keepends=True)[: self.lines] if self.path.exists() else []
            if len(kept) < self.lines:  # a lost or cut file: resuming would number the steps wrongly
                raise LenrlError(
                    f"{self.path}: {len(kept)} lines, but the checkpoint of step {resume_at[0]} was taken after "
                    f"{self.lines}: the metrics file is not the one the checkpoint belongs to"
                )
            atomic_write(self.path, "".join(kept))
        self.file = self.path.open("a")
        # sys.stdout looked up now, not at import: whoever redirected it since (a test, a wrapper) gets the lines
        self.total, self.out, self.t0 = total_steps, out or sys.stdout, time.perf_counter()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.first_step if resume_at is not None else None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
        self.wandb = wandb.start(run_dir) if wandb is not None else None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.file.write(json.dumps({"step": step, **metrics}, allow_nan=True) + "\n")
        self.file.flush()
        self.lines += 1
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / (step - self.first_step + 1) * (self.total - step)
        m = metrics
        print(
            f"step {step}/{self.total} | reward {m['reward/mean']:.3f} acc {m['reward/accuracy']:.3f}"
            f" | len {m['len/mean']:.1f} p90 {m['len/p90']:.0f} trunc {m['len/truncated_frac']:.2f}"
            f" | loss {m['actor/loss']:+.2e} gap {m['sync/logp_abs_gap']:.2e}"
            f" | {m['time/step_s']:.1f}s/step, {m['time/gen_tokens_per_s']:.0f} tok/s | ETA {_hms(eta)}",
            file=self.out,
            flush=True,
        )

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def check_wandb() -> None:
    """Fail in one line, before anything starts, when W&B logging is asked for but wandb is missing."""
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise LenrlError("output.wandb_project is set but wandb is not installed: pip install wandb")


@dataclass(frozen=True)
class WandbRun:
    """Weights & Biases logging of one run (`output.wandb_project`). The W&B run id is the run directory's
    name, so a resumed run continues the same W&B run (W&B keeps the steps it already had: the resumed
    steps up to its last one are not replaced there, unlike in metrics.jsonl and TensorBoard)."""

    project: str
    mode: str
    config: dict[str, Any]

    def start(self, run_dir: Path) -> Any:
        check_wandb()
        import wandb

        mode: Any = self.mode  # online | offline, checked by the config
        return wandb.init(
            project=self.project,
            name=run_dir.name,
            id=re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name),
            dir=str(run_dir),
            mode=mode,
            config=self.config,
            resume="allow",
        )


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

"""Checkpoints that a run resumes from exactly: written whole or not at all, the newest complete one found
by a marker written last.

A checkpoint is an HF model directory (weights and tokenizer: `lenrl eval --model` and vLLM load it as
is) plus the training state:

    learner_state.pt      optimizer state and the learner's torch RNG (written by the learner)
    trainer_state.json    step, weight version, metrics.jsonl line count, the prompt stream's position
                          (order, epoch, RNG), the next group id (the engines' per-request seeds derive
                          from it and the step), the driver's python / numpy / torch RNG states, the lr
    question_budgets.json PALU's per-question budgets (when the run has them)
    COMPLETE              written last

It is assembled in a hidden `.tmp` directory beside its final place and renamed there once the marker is
in: a crash mid-write leaves a `.tmp` directory, never one that looks valid, and resume ignores it.
Periodic checkpoints live in `<run>/checkpoints/step_NNNNNN` (the newest `output.keep_last` are kept); the
final one is `<run>/checkpoint`. The budget schedule B(t) and the lr factor are functions of the step, so
the step restores them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from lenrl.errors import LenrlError

MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"
LEARNER_STATE_FILE = "learner_state.pt"
PERIODIC_DIR = "checkpoints"
FINAL_DIR = "checkpoint"


@dataclass(frozen=True)
class TrainerState:
    """The driver's half of a checkpoint (the learner writes its own)."""

    step: int
    weight_version: int
    metrics_lines: int
    prompts: dict[str, Any]
    next_group: int
    question_budgets: dict[str, int] | None
    rng: dict[str, Any]
    lr: float
    nonfinite_streak: int = 0


class CheckpointWriter(Protocol):
    """What writes the model half: `LearnerGroup.save` (HF model, tokenizer, learner_state.pt)."""

    def save(self, path: str, tokenizer_src: str) -> str: ...


def rng_state() -> dict[str, Any]:
    """The driver process's global RNGs, JSON-ready."""
    version, internal, gauss = random.getstate()
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    return {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def write(
    directory: Path,
    state: TrainerState,
    learners: CheckpointWriter,
    tokenizer_src: str,
    extra: Callable[[Path], None] = lambda tmp: None,
) -> Path:
    """Assemble the checkpoint in `.<name>.tmp` beside `directory` (`extra` adds files, e.g. PALU's budgets
    in the format `model.name=<checkpoint>` reads), marker last, then rename it into place (replacing an
    older checkpoint of the same name)."""
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.mkdir()
        learners.save(str(tmp), tokenizer_src)
        extra(tmp)
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
        (tmp / MARKER).write_text(f"step {state.step}\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def periodic_dir(run: Path, step: int) -> Path:
    return run / PERIODIC_DIR / f"step_{step:06d}"


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file() and (directory / STATE_FILE).is_file()


def complete_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every complete checkpoint of run directory `run`, oldest first."""
    found = [d for d in (run / PERIODIC_DIR).glob("step_*") if is_complete(d)]
    if is_complete(run / FINAL_DIR):
        found.append(run / FINAL_DIR)
    return sorted(((read_state(d).step, d) for d in found), key=lambda sd: (sd[0], sd[1].name == FINAL_DIR))


def latest(run: Path) -> Path | None:
    """The newest complete checkpoint of `run` (by step; the final one wins a tie), or None."""
    found = complete_checkpoints(run)
    return found[-1][1] if found else None


def prune(run: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` periodic checkpoints, and leftovers of interrupted writes."""
    periodic = [d for _, d in complete_checkpoints(run) if d.parent.name == PERIODIC_DIR]
    for d in periodic[:-keep_last]:
        shutil.rmtree(d, ignore_errors=True)
    for tmp in (run / PERIODIC_DIR).glob(".step_*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_state(directory: Path) -> TrainerState:
    path = directory / STATE_FILE
    try:
        return TrainerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise LenrlError(f"{path}: not a lenrl trainer state ({type(e).__name__}: {e})") from None

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

On a local filesystem it is assembled in a hidden `.tmp` directory beside its final place and renamed there
once the marker is in: a crash mid-write leaves a `.tmp` directory, never one that looks valid, and resume
ignores it. Under a URI (`output.dir=s3://...`, lenrl/storage.py), where object stores cannot rename a
directory, the learner uploads its half straight into place from its own node, the driver adds its files,
and the marker is uploaded last: a directory without it is ignored by resume and deleted by `prune`.
Periodic checkpoints live in `<run>/checkpoints/step_NNNNNN` (the newest `output.keep_last` are kept); the
final one is `<run>/checkpoint`. The budget schedule B(t) and the lr factor are functions of the step, so
the step restores them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from lenrl import storage
from lenrl.errors import LenrlError
from lenrl.storage import Location

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
    directory: Location,
    state: TrainerState,
    learners: CheckpointWriter,
    tokenizer_src: str,
    extra: Callable[[Path], None] = lambda tmp: None,
) -> Location:
    """Write the checkpoint whole or not at all (replacing an older one of the same name): locally in
    `.<name>.tmp` beside `directory`, marker last, then renamed into place; under a URI in place, marker
    uploaded last. `extra` adds files (e.g. PALU's budgets, in the format `model.name=<checkpoint>` reads)."""
    if storage.is_uri(directory):
        return _write_uri(str(directory), state, learners, tokenizer_src, extra)
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.mkdir()
        learners.save(str(tmp), tokenizer_src)
        _driver_files(tmp, state, extra)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _write_uri(
    uri: str, state: TrainerState, learners: CheckpointWriter, tokenizer_src: str, extra: Callable[[Path], None]
) -> str:
    """The learner uploads its half from its own node (`Learner.save` takes a URI); an interrupted write
    leaves a directory without a marker, which no reader takes for a checkpoint."""
    marker = storage.join(uri, MARKER)
    if storage.exists(marker):  # an older checkpoint of this name stops being valid before it is replaced
        storage.remove(marker)
    storage.remove(uri)
    learners.save(uri, tokenizer_src)
    with tempfile.TemporaryDirectory(prefix="lenrl-ckpt-") as tmp:
        _driver_files(Path(tmp), state, extra)
        storage.upload(Path(tmp), uri, last=MARKER)
    return uri


def _driver_files(directory: Path, state: TrainerState, extra: Callable[[Path], None]) -> None:
    """The driver's half of the checkpoint, marker last."""
    extra(directory)
    (directory / STATE_FILE).write_text(json.dumps(asdict(state)))
    (directory / MARKER).write_text(f"step {state.step}\n")


def periodic_dir(run: Location, step: int) -> Location:
    return storage.join(run, PERIODIC_DIR, f"step_{step:06d}")


def final_dir(run: Location) -> Location:
    return storage.join(run, FINAL_DIR)


def is_complete(directory: Location) -> bool:
    return storage.is_file(storage.join(directory, MARKER)) and storage.is_file(storage.join(directory, STATE_FILE))


def complete_checkpoints(run: Location) -> list[tuple[int, Location]]:
    """(step, directory) of every complete checkpoint of run directory `run`, oldest first."""
    found = [d for d in _periodic(run) if is_complete(d)]
    if is_complete(final_dir(run)):
        found.append(final_dir(run))
    return sorted(((read_state(d).step, d) for d in found), key=lambda sd: (sd[0], storage.name(sd[1]) == FINAL_DIR))


def latest(run: Location) -> Location | None:
    """The newest complete checkpoint of `run` (by step; the final one wins a tie), or None."""
    found = complete_checkpoints(run)
    return found[-1][1] if found else None


def prune(run: Location, keep_last: int) -> None:
    """Delete all but the newest `keep_last` periodic checkpoints, and leftovers of interrupted writes
    (`.step_*.tmp` directories locally; `step_*` directories without a marker under a URI)."""
    periodic = [d for _, d in complete_checkpoints(run) if storage.name(d) != FINAL_DIR]
    for d in periodic[:-keep_last]:
        storage.remove(d)
    for d in storage.list_dirs(storage.join(run, PERIODIC_DIR)):
        if storage.name(d).startswith(".step_") or (storage.is_uri(d) and not is_complete(d)):
            storage.remove(d)


def _periodic(run: Location) -> list[Location]:
    return [d for d in storage.list_dirs(storage.join(run, PERIODIC_DIR)) if storage.name(d).startswith("step_")]


def read_state(directory: Location) -> TrainerState:
    path = storage.join(directory, STATE_FILE)
    try:
        return TrainerState(**json.loads(storage.read_text(path)))
    except (OSError, ValueError, TypeError) as e:
        raise LenrlError(f"{path}: not a lenrl trainer state ({type(e).__name__}: {e})") from None

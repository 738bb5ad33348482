"""The run directory: resolved config, metrics, TensorBoard events, checkpoints.

A new run's directory is created only once setup has succeeded, and removed again if the run fails or is
interrupted (SIGTERM and SIGINT arrive as an exception: `lenrl.errors.interrupt_on_signals`) before its
first step is logged, so neither bad input nor a stopped job leaves a half-written run behind. After that,
what was logged stays.

A resumed run (`train.resume`: auto, or a run directory) continues an existing directory from its newest
complete checkpoint (lenrl/trainer/checkpoint.py). Its config must be the saved one: only `train.steps`
(to extend a run), `train.resume` and the `output` settings may differ, so one metrics file never mixes
two setups. All of this is decided here, before Ray or a model starts.

`output.dir` may also be a URI (`s3://bucket/runs`, lenrl/storage.py). The driver then writes its files
(config, metrics, TensorBoard, evaluations, plots) into a local staging copy under $LENRL_CACHE/staging
and mirrors them to the URI after the first step, after every checkpoint and when the run ends, however it
ends; checkpoints go to the URI directly, the learner's half from the learner's own node. Resuming from a
URI fetches the run's files (not its checkpoints: the learners fetch those) into a fresh staging copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from lenrl import storage
from lenrl.config import Config
from lenrl.errors import LenrlError
from lenrl.storage import Location
from lenrl.trainer import checkpoint

CONFIG_FILE = "config.yaml"
SUBMIT_DIR_ENV = "LENRL_SUBMIT_DIR"
"""set by launch/submit.sh and launch/local.sh to the directory the Ray job was submitted from"""
MAY_CHANGE_ON_RESUME = ("train.steps", "train.resume", "output.")


class RunDir:
    """`location`: where the run lives (a directory, or a URI); `path`: the local directory the driver
    writes into (the run directory itself, or its staging copy when `location` is a URI)."""

    def __init__(self, cfg: Config):
        self.cfg, self.committed = cfg, False
        self.resume_from: Location | None = None
        resume = cfg.train.resume
        if resume is None:
            name = cfg.output.name or f"{cfg.algo_name}-{time.strftime('%Y%m%d-%H%M%S')}"
            self._place(storage.join(output_root(cfg.output.dir), name))
            if storage.exists(self.location):
                raise LenrlError(f"output.name: run directory {self.location} already exists (continue it: --resume)")
            return
        if resume == "auto":
            if not cfg.output.name:
                raise LenrlError("train.resume=auto needs output.name: the run directory to continue")
            self._place(storage.join(output_root(cfg.output.dir), cfg.output.name))
            if not storage.exists(self.location):
                return  # nothing to continue yet: a new run (a requeued job's first start)
        else:
            if storage.is_uri(resume):
                storage.check_uri(resume, "train.resume")
            self._place(storage.as_location(resume))
            if not (storage.exists(self.location) if storage.is_uri(resume) else self.path.is_dir()):
                raise LenrlError(f"train.resume: {self.location} is not a run directory")
        self.resume_from = checkpoint.latest(self.location)
        if self.resume_from is None:
            raise LenrlError(f"train.resume: {self.location} holds no complete checkpoint to continue from")
        check_same_config(storage.join(self.location, CONFIG_FILE), cfg)
        self.committed = True  # a resumed directory is never removed

    def _place(self, location: Location) -> None:
        self.location = location
        self.path = staging_dir(location) if storage.is_uri(location) else Path(location)
        self._sent: dict[str, tuple[int, int]] = {}  # what sync() has uploaded, so it sends only changes

    def __enter__(self) -> RunDir:
        if storage.is_uri(self.location):
            shutil.rmtree(self.path.parent, ignore_errors=True)  # an earlier driver's leftover: the URI is the truth
        if self.resume_from is not None:
            if storage.is_uri(self.location):
                storage.download(str(self.location), self.path, skip=CHECKPOINT_DIRS)
            return self
        self.path.mkdir(parents=True)
        try:  # __exit__ does not run when __enter__ raises (an interruption right here included)
            (self.path / CONFIG_FILE).write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def commit(self) -> None:
        """Called after each step is logged: from the first on, the directory is kept whatever happens."""
        if not self.committed:
            self.committed = True
            self.sync()

    def sync(self) -> None:
        """Mirror the driver's files to the run's URI (nothing to do for a local run directory)."""
        if storage.is_uri(self.location):
            storage.upload(self.path, str(self.location), skip=CHECKPOINT_DIRS, sent=self._sent)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Mirror the run's files when it ends (a URI run's staging copy is then dropped); a run that failed
        before its first step leaves nothing behind."""
        if exc_type is not None and not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if exc_type is None:
            self.sync()
        else:
            try:  # what the failed run logged, without hiding why it failed
                self.sync()
            except Exception as e:
                first = (str(e).splitlines() or [""])[0]
                print(
                    f"lenrl: warning: could not copy the run's files to {self.location} ({type(e).__name__}: "
                    f"{first}); they stay in {self.path} until a run at that location starts again",
                    flush=True,
                )
                return
        if storage.is_uri(self.location):
            shutil.rmtree(self.path.parent, ignore_errors=True)


CHECKPOINT_DIRS = (checkpoint.PERIODIC_DIR, checkpoint.FINAL_DIR)
"""written to the run's location directly, never staged"""


def staging_dir(location: Location) -> Path:
    """The driver's local copy of a run that lives at a URI: one per URI, under $LENRL_CACHE/staging."""
    from lenrl.model.embedded import cache_root

    digest = hashlib.sha256(str(location).encode()).hexdigest()[:10]
    return cache_root() / "staging" / digest / storage.name(location)  # named as the run: W&B, plots


def output_root(directory: str) -> Location:
    """`output.dir` as a location every process of the run writes to: a URI (checked here, before anything
    starts: lenrl/storage.py), or an absolute path.

    Under `ray job submit --working-dir`, the driver runs in Ray's temporary copy of the working directory
    (`.../runtime_resources/working_dir_files/_ray_pkg_<hash>`), which disappears with the Ray session: a
    relative output.dir there would lose the run. It is resolved against the submission directory instead
    ($LENRL_SUBMIT_DIR, which the launch scripts set) when this machine reaches it, and refused otherwise.
    On a cluster, output.dir must be on storage every node reaches (the learner writes the checkpoints)."""
    if storage.is_uri(directory):
        storage.check_uri(directory, "output.dir")
        return storage.as_location(directory)
    path = Path(directory).expanduser()
    if path.is_absolute():
        return path
    cwd = Path.cwd()
    if "_ray_pkg_" not in str(cwd):
        return (cwd / path).resolve()
    submit = os.environ.get(SUBMIT_DIR_ENV)
    if submit and Path(submit).is_dir():
        return (Path(submit) / path).resolve()
    raise LenrlError(
        f"output.dir {directory!r} is relative, but this Ray job runs in a temporary copy of the working directory "
        f"({cwd}) that is deleted with the job: give an absolute output.dir on storage every node reaches (or a "
        f"URI such as s3://bucket/runs), or submit with launch/submit.sh (it passes the submission directory as "
        f"${SUBMIT_DIR_ENV})"
    )


def check_same_config(saved_path: Location, cfg: Config) -> None:
    """Refuse to resume under a config that differs from the saved one (but for MAY_CHANGE_ON_RESUME)."""
    try:
        saved = yaml.safe_load(storage.read_text(saved_path))
    except (OSError, yaml.YAMLError) as e:
        raise LenrlError(f"train.resume: cannot read {saved_path}: {e}") from None
    now = yaml.safe_load(yaml.safe_dump(cfg.to_dict(), sort_keys=False))  # the same round trip as the saved file
    for key in sorted(set(_flat(saved)) | set(_flat(now))):
        if key.startswith(MAY_CHANGE_ON_RESUME):
            continue
        a, b = _flat(saved).get(key, "<absent>"), _flat(now).get(key, "<absent>")
        if a != b:
            raise LenrlError(f"train.resume: {key} is {b!r} but the run being resumed used {a!r} ({saved_path})")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}

"""The run directory: resolved config, metrics, TensorBoard events, checkpoints.

A new run's directory is created only once setup has succeeded, and removed again if the run fails or is
interrupted (SIGTERM and SIGINT arrive as an exception: `lenrl.errors.interrupt_on_signals`) before its
first step is logged, so neither bad input nor a stopped job leaves a half-written run behind. After that,
what was logged stays.

A resumed run (`train.resume`: auto, or a run directory) continues an existing directory from its newest
complete checkpoint (lenrl/trainer/checkpoint.py). Its config must be the saved one: only `train.steps`
(to extend a run), `train.resume` and the `output` settings may differ, so one metrics file never mixes
two setups. All of this is decided here, before Ray or a model starts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from lenrl.config import Config
from lenrl.errors import LenrlError
from lenrl.trainer import checkpoint

CONFIG_FILE = "config.yaml"
SUBMIT_DIR_ENV = "LENRL_SUBMIT_DIR"
"""set by launch/submit.sh and launch/local.sh to the directory the Ray job was submitted from"""
MAY_CHANGE_ON_RESUME = ("train.steps", "train.resume", "output.")


class RunDir:
    def __init__(self, cfg: Config):
        self.cfg, self.committed = cfg, False
        self.resume_from: Path | None = None
        resume = cfg.train.resume
        if resume is None:
            name = cfg.output.name or f"{cfg.algo_name}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.path = output_root(cfg.output.dir) / name
            if self.path.exists():
                raise LenrlError(f"output.name: run directory {self.path} already exists (continue it: --resume)")
            return
        if resume == "auto":
            if not cfg.output.name:
                raise LenrlError("train.resume=auto needs output.name: the run directory to continue")
            self.path = output_root(cfg.output.dir) / cfg.output.name
            if not self.path.exists():
                return  # nothing to continue yet: a new run (a requeued job's first start)
        else:
            self.path = Path(resume)
            if not self.path.is_dir():
                raise LenrlError(f"train.resume: {self.path} is not a run directory")
        self.resume_from = checkpoint.latest(self.path)
        if self.resume_from is None:
            raise LenrlError(f"train.resume: {self.path} holds no complete checkpoint to continue from")
        check_same_config(self.path / CONFIG_FILE, cfg)
        self.committed = True  # a resumed directory is never removed

    def __enter__(self) -> RunDir:
        if self.resume_from is not None:
            return self
        self.path.mkdir(parents=True)
        try:  # __exit__ does not run when __enter__ raises (an interruption right here included)
            (self.path / CONFIG_FILE).write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def commit(self) -> None:
        """Called after the first step is logged: from here on the directory is kept whatever happens."""
        self.committed = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)


def output_root(directory: str) -> Path:
    """`output.dir` as an absolute path every process of the run writes to.

    Under `ray job submit --working-dir`, the driver runs in Ray's temporary copy of the working directory
    (`.../runtime_resources/working_dir_files/_ray_pkg_<hash>`), which disappears with the Ray session: a
    relative output.dir there would lose the run. It is resolved against the submission directory instead
    ($LENRL_SUBMIT_DIR, which the launch scripts set) when this machine reaches it, and refused otherwise.
    On a cluster, output.dir must be on storage every node reaches (the learner writes the checkpoints)."""
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
        f"({cwd}) that is deleted with the job: give an absolute output.dir on storage every node reaches, or "
        f"submit with launch/submit.sh (it passes the submission directory as ${SUBMIT_DIR_ENV})"
    )


def check_same_config(saved_path: Path, cfg: Config) -> None:
    """Refuse to resume under a config that differs from the saved one (but for MAY_CHANGE_ON_RESUME)."""
    try:
        saved = yaml.safe_load(saved_path.read_text())
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

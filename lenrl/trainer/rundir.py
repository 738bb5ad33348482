"""The run directory: resolved config, metrics, TensorBoard events, final checkpoint.

It is created only once setup has succeeded, and removed again if the run fails or is interrupted
(SIGTERM and SIGINT arrive as an exception: `lenrl.errors.interrupt_on_signals`) before its first step is
logged, so neither bad input nor a stopped job leaves a half-written run behind. After that, what was
logged stays.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import yaml

from lenrl.config import Config
from lenrl.errors import LenrlError


class RunDir:
    def __init__(self, cfg: Config):
        name = cfg.output.name or f"{cfg.algo_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.path = Path(cfg.output.dir) / name
        if self.path.exists():
            raise LenrlError(f"output.name: run directory {self.path} already exists")
        self.committed = False
        self.cfg = cfg

    def __enter__(self) -> RunDir:
        self.path.mkdir(parents=True)
        try:  # __exit__ does not run when __enter__ raises (an interruption right here included)
            (self.path / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
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

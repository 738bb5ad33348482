"""Writing files and directories whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write to a hidden temporary file beside `path`, then rename it over `path`: a reader (or a run that
    resumes after a crash) sees the old file or the new one, never a partial one. Text is UTF-8."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(out: str | os.PathLike, prefix: str = ".build-") -> Iterator[Path]:
    """Yield a hidden temporary directory beside `out`; when the block succeeds, rename it to `out`.

    An interrupted or failed block removes the temporary directory, so `out` is never a half-written
    directory: it is absent or complete. When another process finished `out` first, ours is discarded."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

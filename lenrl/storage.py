"""Where a run's outputs live: a local directory, or a URI on storage every node reaches.

`output.dir` is either a path (on a cluster: an absolute path on a filesystem every node mounts) or a URI
that an fsspec filesystem serves: `s3://bucket/runs` (s3fs), `gs://...` (gcsfs), `abfs://...` (adlfs),
`hdfs://...`, `file:///abs/path`, as Ray Train's `storage_path` is. A `Location` is one or the other; the
functions here treat both alike, so the checkpoint code (lenrl/trainer/checkpoint.py) has one version.

Object stores have no atomic directory rename: a checkpoint written to a URI is complete once its marker
file, uploaded after every other file, is there (`upload(..., last=MARKER)`). In-process filesystems
(`memory://`) are refused, since the learners and engines are other processes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError

Location = Path | str
"""a local directory (Path), or a URI (str with '://')"""

IN_PROCESS = ("memory",)


def is_uri(location: Location) -> bool:
    return isinstance(location, str) and "://" in location


def as_location(text: str) -> Location:
    """A config value as a Location: URIs stay strings, everything else is a Path."""
    return text.rstrip("/") if is_uri(text) else Path(text).expanduser()


def check_uri(uri: str, key: str) -> None:
    """Fail in one line, before anything starts, when `uri` names no usable filesystem or cannot be reached."""
    import fsspec

    protocol = uri.split("://", 1)[0]
    if protocol in IN_PROCESS:
        raise LenrlError(f"{key}: {uri!r} lives in one process's memory; the learners are other processes")
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise LenrlError(f"{key}: {uri!r}: no fsspec filesystem for protocol {protocol!r}") from None
    except ImportError as e:  # s3fs, gcsfs, adlfs, ... are installed by the user, for their storage
        raise LenrlError(f"{key}: {uri!r} needs a package that is not installed: {e}") from None
    try:
        exists(uri)
    except Exception as e:  # credentials, network, permissions: whatever the backend says, in one line
        raise LenrlError(f"{key}: cannot reach {uri!r}: {type(e).__name__}: {e}".splitlines()[0]) from None


def _split(uri: str) -> tuple[Any, str]:
    """(filesystem, path inside it) for `uri` (fsspec caches the filesystem objects)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def join(location: Location, *names: str) -> Location:
    if isinstance(location, Path):
        return location.joinpath(*names)
    return "/".join([location.rstrip("/"), *names])


def name(location: Location) -> str:
    return location.name if isinstance(location, Path) else location.rstrip("/").rsplit("/", 1)[-1]


def exists(location: Location) -> bool:
    if isinstance(location, Path):
        return location.exists()
    fs, path = _split(location)
    return bool(fs.exists(path))


def is_file(location: Location) -> bool:
    if isinstance(location, Path):
        return location.is_file()
    fs, path = _split(location)
    return bool(fs.isfile(path))


def read_text(location: Location) -> str:
    if isinstance(location, Path):
        return location.read_text()
    fs, path = _split(location)
    with fs.open(path, "r") as f:
        return str(f.read())


def write_text(location: Location, text: str) -> None:
    if isinstance(location, Path):
        location.parent.mkdir(parents=True, exist_ok=True)
        location.write_text(text)
        return
    fs, path = _split(location)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(text)


def list_dirs(location: Location) -> list[Location]:
    """The subdirectories of `location` (none when it does not exist), by name."""
    if isinstance(location, Path):
        return sorted(d for d in location.iterdir() if d.is_dir()) if location.is_dir() else []
    fs, path = _split(location)
    if not fs.exists(path):
        return []
    names = [name(e["name"]) for e in fs.ls(path, detail=True) if e["type"] == "directory"]
    return [join(location, n) for n in sorted(names)]


def remove(location: Location) -> None:
    """Delete a directory tree (nothing when it does not exist)."""
    if isinstance(location, Path):
        shutil.rmtree(location, ignore_errors=True)
        return
    fs, path = _split(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def upload(local: Path, uri: str, *, last: str | None = None, skip: tuple[str, ...] = ()) -> None:
    """Copy the files under directory `local` to `uri` (overwriting), file `last` after all the others, so
    that its presence means the rest arrived; top-level entries named in `skip` stay behind."""
    fs, root = _split(uri)
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.relative_to(local).parts[0] not in skip)
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)  # stable: `last` moves to the end
    for p in files:
        target = f"{root}/{p.relative_to(local).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(p), target)


def download(uri: str, local: Path, *, skip: tuple[str, ...] = ()) -> None:
    """Copy every file under `uri` into directory `local`; top-level entries named in `skip` stay behind."""
    fs, root = _split(uri)
    root = root.rstrip("/")
    for remote in fs.find(root):
        rel = remote[len(root) :].lstrip("/")
        if not rel or rel.split("/", 1)[0] in skip:
            continue
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))


def fetch(uri: str, cache: Path) -> Path:
    """A local copy of directory `uri` in a subdirectory of `cache`, one per version of its contents (the
    names and sizes of its files), so a checkpoint replaced at the same URI is fetched again. Written whole
    or not at all (lenrl.files.atomic_dir)."""
    from lenrl.files import atomic_dir

    fs, root = _split(uri)
    root = root.rstrip("/")
    listing = sorted((p[len(root) :], int(info.get("size") or 0)) for p, info in fs.find(root, detail=True).items())
    if not listing:
        raise LenrlError(f"{uri}: no such directory, or an empty one")
    digest = hashlib.sha256(json.dumps([uri, listing]).encode()).hexdigest()[:12]
    out = cache / f"{name(uri)}-{digest}"
    if not out.is_dir():
        with atomic_dir(out, prefix=".fetch-") as tmp:
            download(uri, tmp)
    return out

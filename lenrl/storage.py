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

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError

Location = Path | str
"""a local directory (Path), or a URI (str with '://')"""

IN_PROCESS = ("memory",)


def is_uri(location: Location) -> bool:
    return isinstance(location, str) and "://" in location


def as_location(text: str) -> Location:
    """A config value as a Location: URIs stay strings (without a trailing slash), everything else is a Path."""
    if not is_uri(text):
        return Path(text).expanduser()
    protocol, rest = text.split("://", 1)
    return f"{protocol}://{rest.rstrip('/') or '/'}"


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


def upload(
    local: Path,
    uri: str,
    *,
    first: str | None = None,
    last: str | None = None,
    skip: tuple[str, ...] = (),
    sent: dict[str, tuple[int, int]] | None = None,
) -> None:
    """Copy the files under directory `local` to `uri` (overwriting): file `first` before the others and
    `last` after them, so that the presence of `last` means the rest arrived; top-level entries named in
    `skip` stay behind. `sent` (relative path -> size, mtime) skips files unchanged since an earlier call
    with the same dict, and is updated. A file that vanishes meanwhile (a logger rotating it) is passed over."""
    fs, root = _split(uri)
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.relative_to(local).parts[0] not in skip)
    rank = {first: 0, last: 2}
    files.sort(key=lambda p: rank.get(p.relative_to(local).as_posix(), 1))  # stable within each rank
    made: set[str] = set()
    for p in files:
        rel = p.relative_to(local).as_posix()
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if sent is not None and sent.get(rel) == (st.st_size, st.st_mtime_ns):
            continue
        target = f"{root}/{rel}"
        parent = target.rsplit("/", 1)[0]
        if parent not in made:
            made.add(parent)
            with contextlib.suppress(Exception):  # object stores have no directories (and s3fs may try to
                fs.makedirs(parent, exist_ok=True)  # create a bucket): a real failure shows in put_file
        try:
            _retry(fs.put_file, str(p), target)
        except FileNotFoundError:
            if p.exists():
                raise
            continue
        if sent is not None:
            sent[rel] = (st.st_size, st.st_mtime_ns)


def _retry(call: Callable[..., object], *args: object, tries: int = 3, wait_s: float = 1.0) -> None:
    """Object stores fail transiently (throttling, a reset connection): a few tries, the last error raised."""
    for i in range(tries):
        try:
            call(*args)
            return
        except FileNotFoundError:
            raise
        except Exception:
            if i == tries - 1:
                raise
            time.sleep(wait_s * 2**i)


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


def fetch(uri: str, cache: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A local copy of directory `uri` in a subdirectory of `cache`, one per version of its contents (names,
    sizes and the store's version tags: ETag, generation, mtime), so a checkpoint replaced at the same URI is
    fetched again. Written whole or not at all (lenrl.files.atomic_dir); refused when the contents changed
    while being copied. Top-level entries named in `skip` are not copied."""
    from lenrl.files import atomic_dir

    listing = _listing(uri)
    if not listing:
        raise LenrlError(f"{uri}: no such directory, or an empty one")
    digest = hashlib.sha256(json.dumps([uri, listing]).encode()).hexdigest()[:12]
    out = cache / f"{name(uri)}-{digest}"
    if not out.is_dir():
        with atomic_dir(out, prefix=".fetch-") as tmp:
            download(uri, tmp, skip=skip)
            if _listing(uri) != listing:
                raise LenrlError(f"{uri}: changed while it was being copied (a checkpoint being rewritten?)")
    return out


VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash", "LastModified", "last_modified", "mtime")
"""what fsspec backends report of a file's version (s3fs, gcsfs, adlfs, local)"""


def _listing(uri: str) -> list[list[str]]:
    fs, root = _split(uri)
    root = root.rstrip("/")
    found = fs.find(root, detail=True) if fs.exists(root) else {}
    return sorted(
        [path[len(root) :], str(info.get("size")), *(str(info[k]) for k in VERSION_KEYS if k in info)]
        for path, info in found.items()
    )

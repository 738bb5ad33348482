"""lenrl/storage.py: a local directory and a URI (here file://, served by fsspec as an object store would
be: no rename, one file at a time) answer every operation alike; uploads put the marker last."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from lenrl import storage
from lenrl.errors import LenrlError


def _tree(root: Path) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "w.bin").write_bytes(b"\x00\x01")
    (root / "COMPLETE").write_text("step 3\n")
    (root / "a.txt").write_text("a")
    (root / "skipme").mkdir()
    (root / "skipme" / "x").write_text("x")
    return root


@pytest.mark.parametrize("kind", ["path", "uri"])
def test_local_paths_and_uris_answer_alike(tmp_path, kind):
    where = tmp_path / "store"
    loc: storage.Location = where if kind == "path" else f"file://{where}"
    assert not storage.exists(loc) and storage.list_dirs(loc) == []
    (where / "d1").mkdir(parents=True)
    (where / "d1" / "f.txt").write_text("hello")
    (where / "d2").mkdir()
    assert [storage.name(d) for d in storage.list_dirs(loc)] == ["d1", "d2"]
    assert all(type(d) is type(loc) for d in storage.list_dirs(loc))  # a Path stays a Path, a URI a URI
    assert storage.is_file(storage.join(loc, "d1", "f.txt")) and not storage.is_file(storage.join(loc, "d1"))
    assert storage.read_text(storage.join(loc, "d1", "f.txt")) == "hello"
    storage.remove(storage.join(loc, "d1"))
    storage.remove(storage.join(loc, "never-was"))  # nothing to delete: no error
    assert [storage.name(d) for d in storage.list_dirs(loc)] == ["d2"]


def test_upload_puts_the_marker_last_and_download_restores_the_tree(tmp_path, monkeypatch):
    src = _tree(tmp_path / "src")
    order: list[str] = []
    fs_cls = type(fsspec.filesystem("file"))
    put = fs_cls.put_file
    monkeypatch.setattr(
        fs_cls, "put_file", lambda self, lpath, rpath, **kw: (order.append(rpath), put(self, lpath, rpath, **kw))
    )
    uri = f"file://{tmp_path}/remote/ckpt"
    sent: dict = {}
    storage.upload(src, uri, first="sub/deep/w.bin", last="COMPLETE", skip=("skipme",), sent=sent)
    assert [Path(p).name for p in order] == ["w.bin", "a.txt", "COMPLETE"]
    order.clear()
    (src / "a.txt").write_text("a, longer")
    storage.upload(src, uri, skip=("skipme",), sent=sent)  # only what changed since
    assert [Path(p).name for p in order] == ["a.txt"]
    back = tmp_path / "back"
    storage.download(uri, back)
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file()) == [
        "COMPLETE",
        "a.txt",
        "sub/deep/w.bin",
    ]
    assert (back / "sub" / "deep" / "w.bin").read_bytes() == b"\x00\x01"
    partial = tmp_path / "partial"
    storage.download(uri, partial, skip=("sub",))
    assert sorted(p.name for p in partial.iterdir()) == ["COMPLETE", "a.txt"]


def test_check_uri_names_what_is_wrong_in_one_line(tmp_path, monkeypatch):
    storage.check_uri(f"file://{tmp_path}/runs", "output.dir")  # reachable, need not exist yet
    with pytest.raises(
        LenrlError, match=r"^output.dir: 'nosuch://b/runs': no fsspec filesystem for protocol 'nosuch'$"
    ):
        storage.check_uri("nosuch://b/runs", "output.dir")
    with pytest.raises(LenrlError, match="lives in one process's memory"):
        storage.check_uri("memory://runs", "output.dir")

    def missing(protocol):
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    with pytest.raises(
        LenrlError, match=r"^train.resume: 's3://b/r' needs a package that is not installed: Install s3fs"
    ):
        storage.check_uri("s3://b/r", "train.resume")


def test_as_location_keeps_uris_as_text_and_paths_as_paths(tmp_path):
    assert storage.as_location("s3://bucket/runs/") == "s3://bucket/runs"
    assert storage.as_location(str(tmp_path)) == tmp_path
    assert storage.join("s3://b/runs", "x", "y") == "s3://b/runs/x/y" and storage.name("s3://b/runs/x/") == "x"


def test_a_model_at_a_uri_is_fetched_once_per_version(tmp_path, monkeypatch):
    from lenrl.model.embedded import resolve_model
    from lenrl.trainer.checkpoint import MARKER, STATE_FILE

    monkeypatch.setenv("LENRL_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "bucket" / "run" / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / STATE_FILE).write_text("{}")
    uri = f"file://{ckpt}"
    with pytest.raises(LenrlError, match=r"an incomplete checkpoint \(no COMPLETE marker"):
        resolve_model(uri)
    (ckpt / MARKER).write_text("step 2\n")
    first = Path(resolve_model(uri))
    assert first.parent == tmp_path / "cache" / "fetched" and (first / "config.json").read_text() == "{}"
    assert Path(resolve_model(uri)) == first  # the same contents: no second copy
    (ckpt / "config.json").write_text("[]")  # replaced by contents of the same size: a new version all the same
    os.utime(ckpt / "config.json", ns=(1, 10**18))
    second = Path(resolve_model(uri))
    assert second != first and (second / "config.json").read_text() == "[]"
    assert sorted(p.name for p in (tmp_path / "cache" / "fetched").iterdir()) == sorted([first.name, second.name])
    with pytest.raises(LenrlError, match=r"holds no model \(no config.json\)"):
        resolve_model(f"file://{tmp_path}/bucket/run")
    upload = tmp_path / "bucket" / "run" / "checkpoints" / "step_000002"  # the learner's half arriving
    upload.mkdir(parents=True)
    (upload / "learner_state.pt").write_bytes(b"")
    (upload / "config.json").write_text("{}")
    with pytest.raises(LenrlError, match=r"^model.name file://.*step_000002: an incomplete checkpoint"):
        resolve_model(f"file://{upload}")

"""Strict YAML trees: reading files (duplicate keys refused, YAML 1.2 floats, one-line errors naming the
file and line), deep-merging them, applying `key.sub=value` overrides, and building typed frozen
dataclasses from the result (wrong types, unknown keys and non-finite numbers refused with the dotted key).
Generic: the schema itself is lenrl/config.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lenrl.errors import LenrlError


def fail(where: str, msg: str) -> typing.NoReturn:
    """The one form of a config error: `config <dotted.key>: <what is wrong>`."""
    raise LenrlError(f"config {where}: {msg}")


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"duplicate key {key!r} (line {line}); PyYAML would silently keep the later one")
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently) and reads
    YAML 1.2 floats: `1e-6` is a float, not the string YAML 1.1 makes of it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader's own error ("found unhashable key") follows
            if key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """YAML text as data, with the strict loader (duplicate keys refused, YAML 1.2 floats)."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`; a missing path, a directory, non-UTF-8 bytes, invalid YAML or a
    duplicate key is a one-line `LenrlError` naming the file."""
    if not path.exists():
        raise LenrlError(f"config file not found: {path}")
    if not path.is_file():
        raise LenrlError(f"config file {path} is not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LenrlError(f"{path}:{line}: not valid UTF-8 (byte {raw[e.start]:#04x})") from None
    try:
        data = parse_yaml(text) or {}
    except DuplicateKeyError as e:
        raise LenrlError(f"{path}:{e.line}: duplicate key {e.key!r} (the later one would silently win)") from None
    except yaml.YAMLError as e:
        raise LenrlError(f"{path}: invalid YAML ({_yaml_problem(e)})") from None
    if not isinstance(data, dict):
        raise LenrlError(f"{path}: top level must be a mapping")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: the problem and where PyYAML found it."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem is None:
        return " ".join(str(e).split())
    return f"{problem}" + (f", line {mark.line + 1}" if mark is not None and "line" not in problem else "")


def merge_trees(dst: dict[str, Any], src: dict[str, Any], where: str) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and k != "params":
            merge_trees(dst[k], v, f"{where}{k}.")
        else:
            dst[k] = v


def apply_override(tree: dict[str, Any], ov: str) -> None:
    key, sep, raw = ov.partition("=")
    if not sep or not key:
        raise LenrlError(f"override {ov!r} must look like key.sub=value")
    try:
        value = parse_yaml(raw) if raw != "" else ""
    except DuplicateKeyError as e:
        raise LenrlError(f"override {key!r}: duplicate key {e.key!r}") from None
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself (a path, an instruction...)
    node: Any = tree
    parts = key.split(".")
    for i, p in enumerate(parts[:-1]):
        node = node[_index(p, node, key)] if isinstance(node, list) else node.setdefault(p, {})
        if not isinstance(node, dict | list):
            where = ".".join(parts[: i + 1])
            raise LenrlError(f"override {key!r}: {where} is a value ({node!r}), not a section with keys")
    if isinstance(node, list):
        node[_index(parts[-1], node, key)] = value
    else:
        node[parts[-1]] = value


def _index(p: str, node: list[Any], key: str) -> int:
    if not p.isdigit() or int(p) >= len(node):
        raise LenrlError(f"override {key!r}: {p!r} is not an index of a list of {len(node)}")
    return int(p)


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        fail(where.rstrip(".") or "root", f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        fail(f"{where}{unknown[0]}", f"unknown key; known keys here: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, v: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], v, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build_dataclass(tp, v, where + ".")
    if origin is list:
        if not isinstance(v, list):
            fail(where, f"expected a list, got {v!r}")
        return [_coerce(args[0], x, f"{where}[{i}]") for i, x in enumerate(v)]
    if origin is dict:
        if not isinstance(v, dict):
            fail(where, f"expected a mapping, got {v!r}")
        return dict(v)
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if tp in (int, float, str, bool) and not (isinstance(v, tp) and not (tp in (int, float) and isinstance(v, bool))):
        fail(where, f"expected {tp.__name__}, got {v!r} ({type(v).__name__})")
    if tp is float and not math.isfinite(v):
        fail(where, f"must be a finite number, got {v!r}")
    return v

"""`lenrl algos`: the methods lenrl implements, generated from the axes table (`lenrl/axes.py`), the
registries and the presets so it cannot go stale. The README's table is this output (a test compares them)."""

from __future__ import annotations

from typing import Any

from lenrl.axes import AXES
from lenrl.config import CONFIG_DIR, available_algos
from lenrl.registry import Registry
from lenrl.yaml_tree import read_yaml


def _summary(fn: object) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def registry_rows(kind: str, reg: Registry) -> list[str]:
    # `module:fn` / `file.py:fn` rewards register under their reference once loaded; only built-ins are listed
    return [f"| {kind} | `{name}` | {_summary(reg.get(name))} |" for name in reg.names() if ":" not in name]


def _reward_label(spec: dict[str, Any]) -> str:
    groups = (spec.get("groups") or {}).get("name")
    gate = spec.get("gate", "none")
    return spec["name"] + (f" [{groups}]" if groups else "") + (f" [gate {gate}]" if gate != "none" else "")


def _preset_parts(tree: dict[str, Any]) -> list[str]:
    """`key=name` for every single-spec axis the preset sets (in table order), then its rewards."""
    parts = []
    for path in dict.fromkeys(a.path for a in AXES if "[]" not in a.path):
        node: Any = tree
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "name" in node:
            parts.append(f"{path.rsplit('.', 1)[-1]}={node['name']}")
    if tree.get("rewards"):
        parts.append("rewards=" + " + ".join(_reward_label(x) for x in tree["rewards"]))
    return parts


def preset_rows() -> list[str]:
    rows = []
    for algo in available_algos():
        path = CONFIG_DIR / "algos" / f"{algo}.yaml"
        head = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        parts = _preset_parts(read_yaml(path))
        rows.append(f"| `{algo}` | {head} | {', '.join(parts)} | `configs/algos/{algo}.yaml` |")
    return rows


def markdown() -> str:
    lines = ["| preset | paper | components | file |", "|---|---|---|---|", *preset_rows(), ""]
    lines += ["| axis | name | formula and paper |", "|---|---|---|"]
    listed: set[int] = set()
    for axis in AXES:
        reg = axis.registry()
        if id(reg) not in listed:  # the group filters serve two axes (algo.filter, rewards[].groups)
            listed.add(id(reg))
            lines += registry_rows(axis.label, reg)
    return "\n".join(lines) + "\n"

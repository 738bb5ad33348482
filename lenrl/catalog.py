"""`lenrl algos`: the methods lenrl implements, generated from the registries and presets so it cannot
go stale. The README's table is this output (a test compares them)."""

from __future__ import annotations

import yaml

from lenrl.config import CONFIG_DIR, available_algos
from lenrl.registry import Registry


def _summary(fn: object) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def registry_rows(kind: str, reg: Registry) -> list[str]:
    # `module:fn` / `file.py:fn` rewards register under their reference once loaded; only built-ins are listed
    return [f"| {kind} | `{name}` | {_summary(reg.get(name))} |" for name in reg.names() if ":" not in name]


def preset_rows() -> list[str]:
    rows = []
    for algo in available_algos():
        path = CONFIG_DIR / "algos" / f"{algo}.yaml"
        head = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        a = (yaml.safe_load(path.read_text()) or {}).get("algo", {})
        parts = [f"{k}={a[k]['name']}" for k in ("advantage", "loss", "aggregation") if k in a]
        rows.append(f"| `{algo}` | {head} | {', '.join(parts)} | `configs/algos/{algo}.yaml` |")
    return rows


def markdown() -> str:
    from lenrl.algos import ADVANTAGES, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
    from lenrl.reward import REWARDS
    from lenrl.reward_runner import resolve_reward

    resolve_reward("math_correct")  # imports the built-in reward plugins
    lines = ["| preset | paper | components | file |", "|---|---|---|---|", *preset_rows(), ""]
    lines += ["| axis | name | formula and paper |", "|---|---|---|"]
    for kind, reg in (
        ("advantage", ADVANTAGES),
        ("policy loss", POLICY_LOSSES),
        ("aggregation", AGGREGATIONS),
        ("KL", KL_ESTIMATORS),
        ("reward", REWARDS),
    ):
        lines += registry_rows(kind, reg)
    return "\n".join(lines) + "\n"

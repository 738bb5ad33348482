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


def _reward_label(spec: dict) -> str:
    groups = (spec.get("groups") or {}).get("name")
    gate = spec.get("gate", "none")
    return spec["name"] + (f" [{groups}]" if groups else "") + (f" [gate {gate}]" if gate != "none" else "")


def preset_rows() -> list[str]:
    rows = []
    for algo in available_algos():
        path = CONFIG_DIR / "algos" / f"{algo}.yaml"
        head = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        a = (yaml.safe_load(path.read_text()) or {}).get("algo", {})
        parts = [f"{k}={a[k]['name']}" for k in ("advantage", "loss", "aggregation", "filter") if k in a]
        r = (yaml.safe_load(path.read_text()) or {}).get("rollout", {})
        parts += [f"{k}={r[k]['name']}" for k in ("budget", "question_budget") if k in r]
        rewards = (yaml.safe_load(path.read_text()) or {}).get("rewards", [])
        if rewards:
            parts.append("rewards=" + " + ".join(_reward_label(x) for x in rewards))
        rows.append(f"| `{algo}` | {head} | {', '.join(parts)} | `configs/algos/{algo}.yaml` |")
    return rows


def markdown() -> str:
    from lenrl.algos import (
        ADVANTAGES,
        AGGREGATIONS,
        BUDGET_SCHEDULES,
        GROUP_FILTERS,
        GROUP_LOSSES,
        KL_ESTIMATORS,
        POLICY_LOSSES,
        QUESTION_BUDGETS,
    )
    from lenrl.reward import REWARDS
    from lenrl.reward_runner import resolve_reward

    resolve_reward("math_correct")  # imports the built-in reward plugins
    lines = ["| preset | paper | components | file |", "|---|---|---|---|", *preset_rows(), ""]
    lines += ["| axis | name | formula and paper |", "|---|---|---|"]
    for kind, reg in (
        ("advantage", ADVANTAGES),
        ("policy loss", POLICY_LOSSES),
        ("group loss", GROUP_LOSSES),
        ("aggregation", AGGREGATIONS),
        ("KL", KL_ESTIMATORS),
        ("group filter", GROUP_FILTERS),
        ("budget schedule", BUDGET_SCHEDULES),
        ("question budget", QUESTION_BUDGETS),
        ("reward", REWARDS),
    ):
        lines += registry_rows(kind, reg)
    return "\n".join(lines) + "\n"

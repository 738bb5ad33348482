"""One optimisation phase over a rollout batch: the three registries applied per micro-batch.

For each mini-batch (an optimizer step): for each micro-batch, logp = policy(tokens); per-token loss
from the policy-loss registry; scalar from the aggregation registry with the mini-batch's global token
and sequence counts (so micro-batching and data-parallel sharding never change the result); optional
KL-to-reference term; backward. Then gradients are summed across learners, clipped, and stepped.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist

from lenrl import storage
from lenrl.algos import AGGREGATIONS, GROUP_LOSSES, KL_ESTIMATORS, POLICY_LOSSES, GroupLossInput, LossInput
from lenrl.config import AlgoConfig, LoraSettings, TrainConfig
from lenrl.memory import peak_memory_gib
from lenrl.trainer import lora as lora_adapters
from lenrl.trainer.batch import TrainBatch
from lenrl.trainer.checkpoint import LEARNER_STATE_FILE
from lenrl.trainer.logprobs import forward_positions, response_logprobs, shared_prompts
from lenrl.trainer.microbatch import padding_fraction, plan_micro_batches


@dataclass(frozen=True)
class MiniBatch:
    """This learner's shard of one optimizer step; counts are over the whole step, all learners."""

    shard: TrainBatch
    num_tokens: int
    num_seqs: int
    num_groups: int

    @classmethod
    def whole(cls, batch: TrainBatch) -> MiniBatch:
        """One learner, one optimizer step over all of `batch`."""
        return cls(batch, batch.num_tokens, len(batch), len(batch.group_id_B.unique()))


@dataclass(frozen=True)
class LearnerStats:
    """Means over response tokens of the whole update, on this learner's shard."""

    loss: float
    kl_ref: float
    entropy: float
    clipfrac: float
    grad_norm: float
    logp_gap: float
    """mean |sampler logp - learner logp| on the pre-update weights (weight-sync parity)"""
    tokens: int
    seconds: float
    nonfinite_skipped: int = 0
    """optimizer steps of this update skipped because the loss or gradient was not finite"""
    fwd_tokens: int = 0
    """real (prompt + response) positions through the forward/backward passes; over `seconds`, the learner's
    tokens/s"""
    pad_frac: float = 0.0
    """share of the training passes' input positions that were padding (lenrl/trainer/microbatch.py)"""
    peak_rss_gib: float = 0.0
    """the learner process's peak resident memory so far (GPU: peak allocated device memory)"""


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


class Learner:
    def __init__(
        self,
        model_path: str,
        algo: AlgoConfig,
        train: TrainConfig,
        *,
        dtype: str,
        temperature: float,
        max_len: int,
        lora: LoraSettings | None = None,
    ):
        from transformers import AutoModelForCausalLM

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            # Ray sets OMP_NUM_THREADS=1 in actors with one CPU; rollouts and updates alternate and never
            # overlap, so the learner may use every core while it runs.
            torch.set_num_threads(os.cpu_count() or 1)
        # Mixed precision: a 16-bit `dtype` is the compute dtype (autocast); the trained weights and AdamW's
        # moments stay fp32 master copies, since bf16 weights lose small updates (lr x grad below bf16's
        # ~3 significant digits of the weight). The frozen reference is stored in the compute dtype.
        self.compute_dtype = resolve_dtype(dtype, self.device)
        torch.manual_seed(train.seed)
        self.model: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        torch.nn.Module.to(self.model, self.device)  # (transformers' typed `to` wrapper rejects a device)
        self.model.train()
        self.lora = lora is not None and lora.rank > 0
        self.ref = None  # with LoRA the reference is the base model: the policy with its adapters off
        if self.lora:
            self.model = lora_adapters.wrap(self.model, cast(LoraSettings, lora))
        elif algo.kl_coef > 0:
            self.ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=self.compute_dtype)
            torch.nn.Module.to(self.ref, self.device).eval()
            self.ref.requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
        # A group loss (DRPO) replaces the per-token loss and its aggregation; config load checked that
        # micro-batches hold whole groups.
        self.group_loss = algo.loss.name in GROUP_LOSSES.names()
        reg = GROUP_LOSSES if self.group_loss else POLICY_LOSSES
        self.loss_fn = reg.bind(algo.loss.name, algo.loss.params)
        self.agg_fn = AGGREGATIONS.bind(algo.aggregation.name, algo.aggregation.params)
        self.kl_fn = KL_ESTIMATORS.bind(algo.kl.name, algo.kl.params)
        self.kl_coef, self.train, self.temperature, self.max_len = algo.kl_coef, train, temperature, max_len

    def update(self, minibatches: list[MiniBatch], lr: float | None = None) -> LearnerStats:
        """`lr`: this step's learning rate (train.lr times the schedule's factor); None keeps the current one."""
        t0 = time.perf_counter()
        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
        on_policy = len(minibatches) == 1 and self.train.epochs == 1
        # Off-policy steps need the behaviour policy's log-probs before any weight changes (DLER recomputes
        # them in the actor rather than trusting the sampler's: docs/algorithms.md §1.9). On-policy, the first and
        # only pass sees the same weights, so its detached log-probs are exactly those. Under train.async_steps
        # the tokens came from an older policy than the learner's: the ratio is taken against the sampler's
        # log-probs, the policy that really produced them (`_micro_step`).
        recompute = not on_policy and not self.train.async_steps
        old = [self._old_logprobs(m.shard) for m in minibatches] if recompute else None
        sums = {"loss": 0.0, "kl_ref": 0.0, "entropy": 0.0, "clipfrac": 0.0, "gap": 0.0, "norm": 0.0}
        tokens = skipped = fwd_tokens = 0
        positions: list[tuple[int, int]] = []
        for epoch in range(self.train.epochs):
            for j, mbatch in enumerate(minibatches):
                for k, micro in enumerate(self._micro(mbatch.shard)):
                    old_k = None if old is None else old[j][k]
                    first = epoch == 0
                    s = self._micro_step(micro, old_k, mbatch, want_stats=first)
                    fwd_tokens += int(micro.attention_mask_BL.sum())
                    if first:
                        for key in s:
                            sums[key] += s[key]
                        tokens += micro.num_tokens
                        positions.append(forward_positions(micro, self._shared(micro)))
                sums["norm"] = self._optimizer_step()
                skipped += not math.isfinite(sums["norm"])
        n = max(tokens, 1)
        return LearnerStats(
            loss=sums["loss"] / len(minibatches),
            kl_ref=sums["kl_ref"] / n if self.kl_coef > 0 else float("nan"),
            entropy=sums["entropy"] / n,
            clipfrac=sums["clipfrac"] / n,
            grad_norm=sums["norm"],
            logp_gap=sums["gap"] / n,
            tokens=tokens,
            seconds=time.perf_counter() - t0,
            nonfinite_skipped=skipped,
            fwd_tokens=fwd_tokens,
            pad_frac=padding_fraction(positions),
            peak_rss_gib=peak_memory_gib(self.device),
        )

    def _micro(self, shard: TrainBatch) -> list[TrainBatch]:
        """Micro-batches cut by length (lenrl/trainer/microbatch.py); whole groups under a group loss."""
        plan = plan_micro_batches(
            shard.prompt_len_B,
            shard.response_len_B,
            shard.group_id_B,
            max_rows=self.train.micro_batch_size,
            max_tokens=self.train.micro_batch_tokens,
            whole_groups=self.group_loss,
            keep_groups=self.train.shared_prefix,
        )
        return [shard.select(rows) for rows in plan]

    def _shared(self, mb: TrainBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
        return shared_prompts(mb) if self.train.shared_prefix else None

    def _logprobs(
        self, model: Any, mb: TrainBatch, with_entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return response_logprobs(
            model, mb, temperature=self.temperature, with_entropy=with_entropy, share_prefix=self.train.shared_prefix
        )

    @torch.no_grad()
    def _old_logprobs(self, shard: TrainBatch) -> list[torch.Tensor]:
        with self._autocast():
            return [self._logprobs(self.model, m)[0] for m in self._micro(shard)]

    def _micro_step(
        self, mb: TrainBatch, old_BT: torch.Tensor | None, mbatch: MiniBatch, *, want_stats: bool
    ) -> dict[str, float]:
        with self._autocast():
            logp_BT, ent_BT = self._logprobs(self.model, mb, with_entropy=want_stats)
        mask_BT = mb.response_mask_BT.to(logp_BT.device)
        current_BT = logp_BT.detach()
        if old_BT is None:
            old_BT = mb.sampler_logp_BT.to(current_BT.device) if self.train.async_steps else current_BT
        counts = {"num_tokens": mbatch.num_tokens, "num_seqs": mbatch.num_seqs, "max_len": self.max_len}
        loss, clip_BT = self._policy_loss(mb, logp_BT, old_BT, mask_BT, mbatch)
        kl_sum = 0.0
        if self.kl_coef > 0:
            kl_BT = self.kl_fn(logp_BT, self._ref_logprobs(mb))
            loss = loss + self.kl_coef * self.agg_fn(kl_BT, mask_BT, **counts)
            kl_sum = float(torch.where(mask_BT, kl_BT.detach(), 0.0).sum())
        loss.backward()
        if not want_stats or ent_BT is None:
            return {}

        def msum(x_BT: torch.Tensor) -> float:
            return float(torch.where(mask_BT, x_BT.detach().float(), 0.0).sum())

        return {
            "loss": float(loss.detach()),
            "kl_ref": kl_sum,
            "entropy": msum(ent_BT),
            "clipfrac": msum(clip_BT),
            # the learner's log-probs of the tokens against the sampler's: weight-push parity when synchronous,
            # parity plus one update's policy change under async_steps
            "gap": msum(
                (mb.sampler_logp_BT.to(old_BT.device) - (current_BT if self.train.async_steps else old_BT)).abs()
            ),
        }

    def _policy_loss(
        self, mb: TrainBatch, logp_BT: torch.Tensor, old_BT: torch.Tensor, mask_BT: torch.Tensor, mbatch: MiniBatch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This micro-batch's share of the mini-batch policy loss, and its per-token clip indicator."""
        dev = logp_BT.device
        if self.group_loss:
            x = GroupLossInput(
                logp_BT, old_BT, mask_BT, mb.correct_B.to(dev), mb.response_len_B.to(dev), mb.group_id_B.to(dev)
            )
            loss, _ = self.loss_fn(x, num_groups=mbatch.num_groups, num_tokens=mbatch.num_tokens, max_len=self.max_len)
            return loss, torch.zeros_like(logp_BT)  # no ratio clipping: a KL trust region instead
        loss_BT, lmetrics = self.loss_fn(LossInput(logp_BT, old_BT, mb.adv_B.to(dev), mask_BT))
        counts = {"num_tokens": mbatch.num_tokens, "num_seqs": mbatch.num_seqs, "max_len": self.max_len}
        return self.agg_fn(loss_BT, mask_BT, **counts), lmetrics["clipfrac"]

    def _optimizer_step(self) -> float:
        if dist.is_initialized() and dist.get_world_size() > 1:
            # Each learner's loss is already normalised by global counts, so the SUM of gradients is the
            # gradient of the whole mini-batch.
            # A learner whose shard is empty (a short batch has fewer groups than learners) adds zeros, so
            # every rank joins the same collectives.
            for p in (p for p in self.model.parameters() if p.requires_grad):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.grad_clip)
        # A non-finite loss or gradient (the norm is computed after the all-reduce, so every learner agrees)
        # skips the step: the weights and AdamW's moments stay as they were. The loop counts such updates.
        if torch.isfinite(norm):
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(norm)

    def join_group(self, rank: int, world: int, addr: str, port: int) -> None:
        join_process_group(rank, world, addr, port)

    def _autocast(self) -> Any:
        """The forward passes' precision: fp32 as is, a 16-bit compute dtype through autocast."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    @torch.no_grad()
    def _ref_logprobs(self, mb: TrainBatch) -> torch.Tensor:
        with self._autocast():
            if self.ref is not None:
                return self._logprobs(self.ref, mb)[0]
            with self.model.disable_adapter():  # LoRA: the base weights are the reference
                return self._logprobs(self.model, mb)[0]

    @torch.no_grad()
    def weight_buckets(self, bucket_mib: float) -> Iterator[dict[str, torch.Tensor]]:
        """The engines' weights in buckets of about `bucket_mib` MiB (0: one bucket), copied to CPU one
        bucket at a time, so the whole state dict is never assembled: under Ray each yielded bucket becomes
        its own object (lenrl/workers/groups.py) that the engines load as it arrives. In the compute dtype,
        which the engines run in (half the bytes of the fp32 masters under bf16); merged, under LoRA."""
        named = lora_adapters.merged_weights(self.model) if self.lora else self.model.state_dict().items()
        bucket: dict[str, torch.Tensor] = {}
        size, limit = 0, bucket_mib * 2**20
        for name, t in named:
            cpu = t.detach().to("cpu", self.compute_dtype, copy=True)
            if bucket and limit and size + cpu.nbytes > limit:
                yield bucket
                bucket, size = {}, 0
            bucket[name] = cpu
            size += cpu.nbytes
        if bucket:
            yield bucket

    def save(self, path: str, tokenizer_src: str) -> str:
        """Write the learner's half of a checkpoint into directory `path`: the HF model and tokenizer, and
        `learner_state.pt` (optimizer state, torch RNG). lenrl/trainer/checkpoint.py makes it atomic. A URI
        `path` (lenrl/storage.py) is uploaded from this learner's node through a local temporary copy."""
        if storage.is_uri(path):
            with tempfile.TemporaryDirectory(prefix="lenrl-save-") as tmp:
                self._save_local(Path(tmp), tokenizer_src)
                # the state file first, so that a reader can tell a partial upload from a plain model
                # directory (lenrl/model/embedded.py, check_model_uri)
                storage.upload(Path(tmp), path, first=LEARNER_STATE_FILE)
            return path
        self._save_local(Path(path), tokenizer_src)
        return path

    def _save_local(self, out: Path, tokenizer_src: str) -> None:
        from transformers import AutoTokenizer

        out.mkdir(parents=True, exist_ok=True)
        if self.lora:
            lora_adapters.save(self.model, out)  # the merged model, and adapter/
        else:
            self.model.save_pretrained(out)
        AutoTokenizer.from_pretrained(tokenizer_src).save_pretrained(out)
        state = {"optimizer": self.opt.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        torch.save(state, out / LEARNER_STATE_FILE)

    def load(self, path: str) -> None:
        """Continue from checkpoint `path` (a directory, or a URI fetched to this node first): its weights,
        optimizer state and RNG (the reference model for the KL term stays the run's starting model)."""
        if storage.is_uri(path):
            with tempfile.TemporaryDirectory(prefix="lenrl-load-") as tmp:
                storage.download(path, Path(tmp))
                self._load_local(Path(tmp))
            return
        self._load_local(Path(path))

    def _load_local(self, path: Path) -> None:
        from transformers import AutoModelForCausalLM

        if self.lora:
            lora_adapters.load_adapter(self.model, path)
        else:
            saved = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            self.model.load_state_dict(saved.state_dict())
            del saved
        state = torch.load(path / LEARNER_STATE_FILE, map_location=self.device, weights_only=False)
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])


def join_process_group(rank: int, world: int, addr: str, port: int) -> None:
    """Data-parallel learners: gloo on CPU, NCCL on GPU; gradients are summed in `_optimizer_step`."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world)

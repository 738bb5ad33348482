"""A vLLM engine that samples groups of responses and takes new weights in place.

Plain object: the driver wraps it with `ray.remote(...)`. The engine runs in-process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`): it starts several times faster on CPU, and
`collective_rpc("reload_weights")` then hands the weights to the worker with no pickling
(docs/install.md#in-process-engine). On CPU, OpenMP threads are bound to all cores and no core is
reserved (docs/install.md#openmp-binding; figures: docs/benchmarks.md#openmp-binding-and-dtype).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

from lenrl.config import RolloutConfig
from lenrl.lengths import think_span_tokens
from lenrl.memory import peak_memory_gib
from lenrl.records import GenerationRequest, GenerationStats, Rollout


def configure_vllm_env(kv_cache_gib: int) -> None:
    """Environment the engine needs; must run before `import vllm`. Existing settings win."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")


def engine_actor_env() -> dict[str, str]:
    """Environment of an engine's Ray actor. Ray sets OMP_NUM_THREADS=1 in an actor with one CPU and vLLM's
    CPU backend then serves with one torch thread; the engine binds every core (configure_vllm_env), so it
    gets one OpenMP thread per core (docs/benchmarks.md#one-openmp-thread-per-core-in-a-ray-actor)."""
    if torch.cuda.is_available():
        return {}
    return {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}


def _fetch(bucket: Any) -> Mapping[str, torch.Tensor]:
    """A bucket of weights: itself, or the dict behind a Ray object reference."""
    if isinstance(bucket, Mapping):
        return bucket
    import ray

    return ray.get(bucket)


def request_seed(seed: int, step: int, group_id: int) -> int:
    """Per-request sampling seed: a request's samples depend on (engine seed, step, group), not on which
    other requests share the batch or which engine runs it. Hashing a tuple of ints is stable across
    processes (PYTHONHASHSEED only salts str/bytes)."""
    return hash((seed, step, group_id)) % (2**31)


class VLLMEngine:
    def __init__(self, model_path: str, cfg: RolloutConfig, *, dtype: str, seed: int, max_num_seqs: int = 64):
        configure_vllm_env(cfg.cpu_kv_cache_gib)
        from vllm import LLM

        if dtype == "auto":
            dtype = "bfloat16" if torch.cuda.is_available() else "float32"
        self.cfg, self.seed, self.version = cfg, seed, 0
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # Typed loosely: vLLM spells dtype and several options as Literals in its signature.
        options: dict[str, Any] = {"dtype": dtype}
        if not torch.cuda.is_available():
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset", gpu_model_runner._bookkeeping_sync)
            # when a seeded request is prefilled in chunks: it rewinds the request's generator, which CPU
            # generators cannot do. Whole-prompt prefills avoid that path; the step's token budget must
            # then hold the longest sequence.
            options.update(enable_chunked_prefill=False, max_num_batched_tokens=max(8192, cfg.max_model_len))
        self.llm = LLM(
            model=model_path,
            seed=seed,
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_num_seqs=max_num_seqs,
            # Log-probs after temperature scaling: the distribution tokens were actually drawn from,
            # which the learner reproduces by dividing its logits by the same temperature.
            logprobs_mode="processed_logprobs",
            **options,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, requests: list[GenerationRequest], step: int) -> tuple[list[Rollout], GenerationStats]:
        """Sample every request; rollouts come back grouped in request order."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        t0 = time.perf_counter()
        params = [
            SamplingParams(
                n=r.n,
                temperature=self.cfg.temperature if r.temperature is None else r.temperature,
                top_p=self.cfg.top_p if r.top_p is None else r.top_p,
                max_tokens=r.max_tokens,
                logprobs=0,
                seed=request_seed(self.seed if r.seed is None else r.seed, step, r.group_id),
            )
            for r in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_ids)) for r in requests]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        rollouts: list[Rollout] = []
        for req, out in zip(requests, outs, strict=True):
            for c in out.outputs:
                ids = list(c.token_ids)
                steps = cast(list[dict[int, Any]], c.logprobs)  # one {token: Logprob} per step (logprobs=0)
                logps = [lp[t].logprob for t, lp in zip(ids, steps, strict=True)]
                rollouts.append(
                    Rollout(
                        group_id=req.group_id,
                        prompt_ids=list(req.prompt_ids),
                        response_ids=ids,
                        sampler_logprobs=logps,
                        finish_reason=str(c.finish_reason),
                        budget=req.max_tokens,
                        think_len=think_span_tokens(ids, c.text, self.tokenizer.decode),
                        text=c.text,
                        weight_version=self.version,
                    )
                )
        tokens = sum(r.response_len for r in rollouts)
        seconds = time.perf_counter() - t0
        return rollouts, GenerationStats(seconds, tokens, peak_memory_gib(self.device))

    def update_weights(self, buckets: Sequence[Any], version: int) -> int:
        """Load new weights into the running engine (no restart) and drop KV blocks cached under the old ones.

        `buckets`: HF-named tensors in dicts, or Ray references to such dicts
        (lenrl/workers/groups.py); each reference is fetched only when the loader reaches it, so the
        engine never holds a second full copy of the weights beside its own."""
        # The worker's `reload_weights` takes checkpoint-format (HF) names and does the name mapping and
        # q/k/v fusing itself; a bare `model.load_weights` fails once the engine has processed its weights.
        named = (kv for b in buckets for kv in _fetch(b).items())
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": named, "is_checkpoint_format": True})
        # Prefix-cache entries hold keys/values computed by the old weights; reusing them would make the
        # next rollouts a mix of two policies.
        self.llm.reset_prefix_cache()
        self.version = version
        return version

"""The non-lenrl contenders of benchmarks/vs_trl.py, each measured in a process of its own so that its peak
memory and thread settings are its own:

    python benchmarks/contenders.py {trl,trl_vllm,vllm,plain,matmul} SPEC.json RESULT.json

SPEC.json is written by vs_trl.py (model directory, the prompts of every step as lenrl renders them, the run's
settings); RESULT.json receives the figures. Run vs_trl.py, not this.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import bench_runs  # noqa: F401  (puts this checkout's lenrl first on sys.path)
import torch
from bench_runs import measured_rows, peak_rss_gib


def divisor_at_most(n: int, cap: int) -> int:
    """The largest divisor of n that is <= cap: a micro-batch that splits the step's batch evenly."""
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def trl(spec: dict[str, Any], use_vllm: bool = False) -> dict[str, Any]:
    """TRL's GRPOTrainer on lenrl's prompts, graded by lenrl's grader, in fp32 on CPU. Times every optimizer
    step (a callback), the generation inside it (the generate call, wrapped on the instance) and counts the
    tokens the loss sees (compute_loss, wrapped)."""
    torch.set_num_threads(os.cpu_count() or 1)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from lenrl.reward_runner import resolve_grader

    steps, group = spec["steps"], spec["group"]
    rows = [p for step in steps for p in step]
    tok = AutoTokenizer.from_pretrained(spec["model_path"])
    # TRL tokenizes a plain-text prompt itself; it must give the token ids lenrl's renderer gave.
    ids_match = all(tok(p["text"])["input_ids"] == p["token_ids"] for p in rows)
    grade = resolve_grader(spec["grader"])
    seen: list[list[str]] = []

    def correct(prompts: list[str], completions: list[str], answer: list[str], **_: Any) -> list[float]:
        seen.append(list(dict.fromkeys(prompts)))
        return [
            float(grade(c, a, thinking=spec["thinking"], **spec["grader_params"]))
            for c, a in zip(completions, answer, strict=True)
        ]

    clock: dict[str, Any] = {"steps": [], "gen": [], "tokens": [], "sync": [], "real": [], "total": [], "t0": 0.0}
    live: dict[str, float] = dict.fromkeys(("gen", "tokens", "sync", "real", "total"), 0)

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            live.update(dict.fromkeys(live, 0))
            clock["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            clock["steps"].append(time.perf_counter() - clock["t0"])
            for k, v in live.items():
                clock[k].append(v)

    class CountingGRPO(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            masks = (inputs["prompt_mask"], inputs["completion_mask"])
            live["real"] += int(sum(m.sum() for m in masks))  # the tokens the loss sees, and with padding
            live["total"] += sum(m.numel() for m in masks)
            return super().compute_loss(model, inputs, *args, **kwargs)

    model = AutoModelForCausalLM.from_pretrained(spec["model_path"], dtype=torch.float32)
    ends = model.generation_config.eos_token_id
    eos = {*(ends if isinstance(ends, list) else [ends]), tok.eos_token_id} - {None}
    batch = len(steps[0]) * group
    micro = divisor_at_most(batch, spec["micro_batch"])
    args = GRPOConfig(
        output_dir=spec["work_dir"],
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // micro,  # one generation of the whole batch, one optimizer step
        num_generations=group,
        max_completion_length=spec["max_tokens"],
        temperature=spec["temperature"],
        top_p=spec["top_p"],
        top_k=0,
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=spec["weight_decay"],
        max_grad_norm=spec["grad_clip"],
        optim="adamw_torch",
        max_steps=len(steps),
        beta=0.0,
        epsilon=spec["clip_low"],
        epsilon_high=spec["clip_high"],
        loss_type="grpo",  # per-response token mean, then mean over responses: lenrl's seq_mean_token_mean
        scale_rewards="group",  # (R - mean_G) / std_G: lenrl's grpo advantage
        num_iterations=1,
        shuffle_dataset=False,  # the dataset is already in lenrl's draw order
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_max_model_length=spec["max_model_len"] if use_vllm else None,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=spec["seed"],
        dataloader_num_workers=0,
    )
    ds = Dataset.from_list([{"prompt": p["text"], "answer": p["answer"]} for p in rows])
    trainer = CountingGRPO(
        model=model, reward_funcs=[correct], args=args, train_dataset=ds, processing_class=tok, callbacks=[StepClock()]
    )

    def timed(fn, key: str, count):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            live[key] += time.perf_counter() - t0
            if count is not None:
                live["tokens"] += count(out, a, k)
            return out

        return wrapper

    if use_vllm:
        gen = trainer.vllm_generation
        gen.generate = timed(gen.generate, "gen", lambda out, a, k: sum(len(c) for c in out[1]))
        gen.sync_weights = timed(gen.sync_weights, "sync", None)
    else:

        def generated(out: torch.Tensor, a: tuple, k: dict) -> int:
            # completion tokens up to and including the first end-of-sequence token, as TRL masks them
            done = torch.isin(out[:, k["input_ids"].shape[1] :], torch.tensor(sorted(eos)))
            return int(torch.where(done.any(1), done.int().argmax(1) + 1, done.shape[1]).sum())

        model.generate = timed(model.generate, "gen", generated)
    trainer.train()
    step_s, gen_s = clock["steps"], clock["gen"]
    kept = measured_rows(list(range(len(step_s))))

    def total(key: str) -> float:
        return sum(clock[key][i] for i in kept)

    update_s = sum(step_s[i] - gen_s[i] for i in kept)
    return {
        "mode": "vLLM colocate" if use_vllm else "transformers generate",
        "per_device_batch": micro,
        "grad_accum": batch // micro,
        "step_s_all": step_s,
        "generate_s_all": gen_s,
        "gen_tokens_all": clock["tokens"],
        "s_per_step": total("steps") / len(kept),
        "generate_s": total("gen") / len(kept),
        "update_s": update_s / len(kept),
        "gen_tok_s": total("tokens") / max(total("gen"), 1e-9),
        "weight_sync_s": total("sync") / len(kept) if use_vllm else math.nan,
        "mean_len": sum(clock["tokens"]) / (len(rows) * group),
        "pad_frac": 1 - sum(clock["real"]) / max(sum(clock["total"]), 1),
        # tokens the loss saw per second of the step outside generation (TRL's update, as lenrl's learner)
        "learner_tok_s": total("real") / max(update_s, 1e-9),
        "peak_rss_gib": peak_rss_gib(),
        "prompt_ids_match": ids_match,
        "prompts_match": seen == [[p["text"] for p in step] for step in steps],
    }


def vllm(spec: dict[str, Any]) -> dict[str, Any]:
    """A bare vllm.LLM with lenrl's engine options, generating each step's requests (n = group, per-request
    seeds as lenrl's engine derives them). No log-probs, no Ray, no weight push: the engine alone."""
    from lenrl.rollout.vllm_engine import configure_vllm_env, request_seed

    configure_vllm_env(spec["kv_cache_gib"])
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    t0 = time.perf_counter()
    llm = LLM(
        model=spec["model_path"],
        seed=spec["seed"],
        dtype="float32",
        max_model_len=spec["max_model_len"],
        enforce_eager=True,
        max_num_seqs=64,
        enable_chunked_prefill=False,
        max_num_batched_tokens=max(8192, spec["max_model_len"]),
    )
    start_s = time.perf_counter() - t0
    seconds, tokens, group_id = [], [], 0
    for step, prompts in enumerate(spec["steps"], 1):
        params = []
        for _ in prompts:
            seed = request_seed(spec["seed"], step, group_id)
            params.append(
                SamplingParams(
                    n=spec["group"],
                    temperature=spec["temperature"],
                    top_p=spec["top_p"],
                    max_tokens=spec["max_tokens"],
                    seed=seed,
                )
            )
            group_id += 1
        requests = [TokensPrompt(prompt_token_ids=p["token_ids"]) for p in prompts]
        t0 = time.perf_counter()
        outs = llm.generate(requests, params, use_tqdm=False)
        seconds.append(time.perf_counter() - t0)
        tokens.append(sum(len(c.token_ids) for o in outs for c in o.outputs))
    kept = measured_rows(list(range(len(seconds))))
    return {
        "engine_start_s": start_s,
        "generate_s_all": seconds,
        "gen_tokens_all": tokens,
        "generate_s": statistics.fmean(seconds[i] for i in kept),
        "gen_tok_s": sum(tokens[i] for i in kept) / max(sum(seconds[i] for i in kept), 1e-9),
        "mean_len": sum(tokens) / (sum(len(s) for s in spec["steps"]) * spec["group"]),
        "peak_rss_gib": peak_rss_gib(),
    }


def plain(spec: dict[str, Any]) -> dict[str, Any]:
    """A plain fine-tuning step of the RL step's shape: batch x seq_len random tokens, forward with labels
    in micro-batches, backward, gradient clip, AdamW. The first repetition is a warm-up."""
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(spec["seed"])
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(spec["model_path"], dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"])
    batch, seq_len = spec["batch"], spec["seq_len"]
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))
    seconds = []
    for _ in range(spec["reps"] + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for chunk in ids.split(spec["micro_batch"]):
            (model(input_ids=chunk, labels=chunk).loss * len(chunk) / batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec["grad_clip"])
        opt.step()
        seconds.append(time.perf_counter() - t0)
    s = statistics.fmean(seconds[1:])
    return {
        "batch": batch,
        "seq_len": seq_len,
        "micro_batch": spec["micro_batch"],
        "step_s_all": seconds,
        "s_per_step": s,
        "learner_tok_s": batch * seq_len / s,
        "pad_frac": 0.0,
        "peak_rss_gib": peak_rss_gib(),
    }


def matmul(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak fp32 FLOP/s of torch.mm on every core: the best of several timed rounds; and the model's
    parameter count (tied embeddings once), built on the meta device without loading weights."""
    torch.set_num_threads(os.cpu_count() or 1)
    from transformers import AutoConfig, AutoModelForCausalLM

    n, reps = spec["matmul_n"], spec["matmul_reps"]
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(spec["model_path"]))
    return {
        "n": n,
        "threads": torch.get_num_threads(),
        "peak_flops": 2 * n**3 * reps / best,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


CONTENDERS = {
    "trl": trl,
    "trl_vllm": lambda spec: trl(spec, use_vllm=True),
    "vllm": vllm,
    "plain": plain,
    "matmul": matmul,
}

if __name__ == "__main__":
    name, spec_path, result_path = sys.argv[1:4]
    result = CONTENDERS[name](json.loads(Path(spec_path).read_text()))
    Path(result_path).write_text(json.dumps(result, indent=1))

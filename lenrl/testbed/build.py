"""Build the testbed reasoner: a small Llama trained from scratch, by supervised fine-tuning on verbose traces.

The model learns the task and the overthinking habit together: every training trace holds the necessary
steps plus a seeded amount of redundancy (lenrl/testbed/task.py), so the built model answers well but
spends several times L* tokens doing it, which is what a length-control method must remove. A short plain
torch loop (AdamW, linear warm-up then cosine decay, loss on response tokens only) on a fresh batch of
training-split problems per step; the prompts are rendered exactly as training and evaluation render them
(lenrl/data/prompts.py): the default instruction, half of them followed by a token budget with a random N
(`task.instruction_for`) that the trace ignores, so L1's and the curriculum's prompts are familiar text.

The result is an HF directory (config, safetensors, tokenizer, `testbed.json` with the recipe and the
build's own held-out check) under `<lenrl cache>/testbed/<name>-<recipe hash>`, written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from lenrl.files import atomic_dir
from lenrl.testbed.recipe import Recipe, canonical, parse_spec
from lenrl.testbed.task import (
    DEFAULT_INSTRUCTION,
    chains,
    instruction_for,
    problems,
    to_problem,
    training_trace,
)

INFO_FILE = "testbed.json"


def model_dir(name: str, recipe: Recipe) -> Path:
    from lenrl.model.embedded import cache_root

    return cache_root() / "testbed" / f"{name}-{recipe.digest()}"


def testbed_model_dir(spec: str) -> Path:
    """The built model of `spec` (`testbed:NAME[:key=value...]`), building it on first use."""
    name, recipe = parse_spec(spec)
    out = model_dir(name, recipe)
    if (out / INFO_FILE).exists():
        return out
    print(f"lenrl: building testbed model {canonical(name, recipe)} (first use; cached in {out})", flush=True)
    return build(name, recipe)


def build(name: str, recipe: Recipe, *, log: Any = print) -> Path:
    """Train and save the model of `recipe`; returns its directory (already built: returned as is)."""
    out = model_dir(name, recipe)
    if (out / INFO_FILE).exists():
        return out
    import torch

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    from lenrl.testbed.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = new_model(recipe, tok)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"lenrl testbed: {n_params / 1e6:.2f}M parameters, {recipe.train_steps} steps of {recipe.batch}", flush=True)
    t0 = time.perf_counter()
    stats = train(model, tok, recipe, log)
    check = held_out_check(model, tok, recipe)
    wall = time.perf_counter() - t0
    log(
        f"lenrl testbed: held-out greedy accuracy {check['accuracy']:.3f}, mean length / L* "
        f"{check['length_ratio']:.2f}, build {wall:.0f} s",
        flush=True,
    )
    info = {
        "spec": canonical(name, recipe),
        "recipe": dataclasses.asdict(recipe),
        "digest": recipe.digest(),
        "parameters": n_params,
        "build_seconds": wall,
        "train": stats,
        "held_out_greedy": check,
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))  # written last: marks the build complete
    log(f"lenrl testbed: saved {out}", flush=True)
    return out


def new_model(recipe: Recipe, tok: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=recipe.hidden,
        intermediate_size=recipe.intermediate,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(cfg)


def prompt_ids(tok: Any, probs: list, instructions: list[str] | None = None) -> list[list[int]]:
    """Rendered prompts, with the default instruction unless `instructions` gives one per problem."""
    from lenrl.data.prompts import render_prompts

    if instructions is None:
        instructions = [DEFAULT_INSTRUCTION] * len(probs)
    return [
        p.token_ids
        for q, instr in zip(probs, instructions, strict=True)
        for p in render_prompts([q], tok, instruction=instr, max_prompt_tokens=1024)
    ]


def _batch(tok: Any, recipe: Recipe, step: int) -> tuple[Any, Any, int]:
    """(input ids, labels with -100 outside the response, response tokens) of training step `step`."""
    import torch

    spec = recipe.task
    seed = recipe.seed * 1_000_003 + step
    cs = chains(spec, recipe.batch, split="train", seed=seed)
    probs = [to_problem(c, f"train-{seed}-{i:06d}") for i, c in enumerate(cs)]
    texts = [training_trace(c, spec, seed, i) for i, c in enumerate(cs)]
    prompts = prompt_ids(tok, probs, [instruction_for(seed, i) for i in range(len(cs))])
    responses = tok(texts, add_special_tokens=False)["input_ids"]
    seqs = [p + r + [tok.eos_token_id] for p, r in zip(prompts, responses, strict=True)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, len(p) : len(s)] = torch.tensor(s[len(p) :])
    return ids, labels, sum(len(s) - len(p) for p, s in zip(prompts, seqs, strict=True))


def train(model: Any, tok: Any, recipe: Recipe, log: Any) -> dict[str, Any]:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=0.01)

    def lr_at(step: int) -> float:
        # linear warm-up, then cosine decay to a tenth of the peak
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        frac = (step - recipe.warmup) / max(1, recipe.train_steps - recipe.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0, tokens, ema = time.perf_counter(), 0, None
    every = max(1, recipe.train_steps // 20)
    for step in range(recipe.train_steps):
        ids, labels, n = _batch(tok, recipe, step)
        loss = model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += ids.numel()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        if (step + 1) % every == 0 or step + 1 == recipe.train_steps:
            el = time.perf_counter() - t0
            left = el / (step + 1) * (recipe.train_steps - step - 1)
            log(
                f"lenrl testbed: step {step + 1}/{recipe.train_steps} loss {ema:.3f} "
                f"{tokens / el:.0f} tok/s, {el:.0f} s, about {left:.0f} s left",
                flush=True,
            )
    model.eval()
    return {"final_loss": ema, "seconds": time.perf_counter() - t0, "tokens": tokens}


def held_out_check(model: Any, tok: Any, recipe: Recipe, max_new_tokens: int = 400) -> dict[str, float]:
    """Greedy accuracy and mean length / L* on held-out problems, with transformers `generate` (a quick
    check printed by the build; `lenrl eval --benchmarks testbed:NAME` is the real evaluation)."""
    import torch

    probs = problems(recipe.task, recipe.eval_problems, split="test", seed=recipe.seed + 10_000)
    random.Random(0).shuffle(probs)
    correct, ratios = 0, []
    tok.padding_side = "left"
    for i in range(0, len(probs), 64):
        chunk = probs[i : i + 64]
        enc = tok.pad({"input_ids": prompt_ids(tok, chunk)}, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        for p, row in zip(chunk, gen[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            n = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
            text = tok.decode(row[:n], skip_special_tokens=True)
            correct += text.endswith(f"</think>\\boxed{{{p.answer}}}")
            ratios.append(n / p.meta["min_len"])
    tok.padding_side = "right"
    return {"accuracy": correct / len(probs), "length_ratio": sum(ratios) / len(ratios), "problems": len(probs)}


def build_main(argv: list[str]) -> int:
    """`lenrl testbed build [NAME] [key=value ...]`: build (or find) the model, print its spec and path."""
    from lenrl.errors import LenrlError, exit_code_of
    from lenrl.testbed.recipe import RECIPES, SEP, is_testbed

    def run() -> int:
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: lenrl testbed build [NAME] [key=value ...]; NAME one of {', '.join(RECIPES)}")
            return 0
        # NAME, testbed:NAME and testbed:NAME:key=value (the spelling training and eval take) all work
        named = bool(argv) and (is_testbed(argv[0]) or "=" not in argv[0])
        spec, items = (argv[0], argv[1:]) if named else ("default", argv)
        name, recipe = parse_spec(SEP.join([spec, *items]))
        out = model_dir(name, recipe)
        if (out / INFO_FILE).exists():
            print(f"lenrl testbed: {canonical(name, recipe)} already built: {out}")
        else:
            out = build(name, recipe)
        info = json.loads((out / INFO_FILE).read_text())
        if not isinstance(info, dict):
            raise LenrlError(f"{out / INFO_FILE}: not a testbed build record")
        spec = canonical(name, recipe)
        print(f"lenrl testbed: use it as model.name={spec} data.source={spec} (eval: --benchmarks {spec})")
        return 0

    return exit_code_of(run)

"""Calibrate the built-in arith task's difficulty against the embedded SmolLM2-135M model.

RL on correctness needs a task where the starting policy is sometimes right: at 0% accuracy every
group has identical rewards and zero advantage. This script measures greedy accuracy per difficulty so
the default difficulty can be the easiest one with a measurable boxed-answer accuracy.

Grading: (a) boxed-only: the last \\boxed{} must hold the answer; (b) last-number: the box where there
is one, else the last number in the response (GSM8K style). Uses the project grader
`rewards.math_correct` (extract_answer, is_equivalent) when it is importable, else a tiny local copy.

    python benchmarks/arith_calibration.py --n 24 --difficulties 0 1 2 3 --dump /tmp/responses.jsonl

Results, with the machine and the command: docs/benchmarks.md#embedded-model-on-the-arith-task.


CPU, fp32 (docs/benchmarks.md#bf16-against-fp32-on-a-cpu-without-native-bf16), 2 threads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

import torch  # noqa: E402

from lenrl.config import DataConfig  # noqa: E402
from lenrl.data.arith import arith_problems  # noqa: E402
from lenrl.data.prompts import render_prompts  # noqa: E402
from lenrl.model.embedded import embedded_model_dir  # noqa: E402


def _local_extract(text: str, *, fallback: str = "none") -> str | None:
    boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxes:
        return boxes[-1].strip() or None
    if fallback == "last_number":
        nums = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
        return nums[-1].replace(",", "") if nums else None
    return None


def _local_equal(pred: str | None, gold: str) -> bool:
    try:
        return pred is not None and float(pred.replace(",", "")) == float(gold)
    except ValueError:
        return False


def grader() -> tuple[object, object, str]:
    """(extract_answer, is_equivalent, which) from rewards.math_correct if present, else the local ones."""
    try:
        from rewards.math_correct import extract_answer, is_equivalent

        return extract_answer, is_equivalent, "rewards.math_correct"
    except ImportError:
        return _local_extract, _local_equal, "local"


@torch.no_grad()
def generate(model, tokenizer, prompts, batch_size: int, max_new_tokens: int) -> list[tuple[str, int]]:
    """Greedy (text, response token count) per prompt, batched with left padding."""
    out = []
    eos = tokenizer.eos_token_id
    for i in range(0, len(prompts), batch_size):
        batch = [p.token_ids for p in prompts[i : i + batch_size]]
        enc = tokenizer.pad({"input_ids": batch}, padding_side="left", return_tensors="pt")
        gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=eos)
        for row in gen[:, enc["input_ids"].shape[1] :].tolist():
            n = row.index(eos) + 1 if eos in row else len(row)  # count the EOS, not the padding after it
            out.append((tokenizer.decode(row[:n], skip_special_tokens=True), n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=48, help="problems per difficulty")
    ap.add_argument("--difficulties", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--seed", type=int, default=1000, help="problem seed (not the training default 0)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--instruction", default=DataConfig().instruction, help="appended to each question")
    ap.add_argument("--show", type=int, default=2, help="example responses printed (stderr) per difficulty")
    ap.add_argument("--dump", type=Path, help="write every response to this JSONL file for inspection")
    args = ap.parse_args()

    torch.set_num_threads(2)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    extract, equal, which = grader()
    print(f"grader: {which}; instruction: {args.instruction!r}; greedy, max_new_tokens={args.max_new_tokens}")

    print("\n| difficulty | acc boxed-only | acc last-number | fraction boxed | mean response tokens | n | time |")
    print("|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for d in args.difficulties:
        t0 = time.time()
        problems = arith_problems(args.n, seed=args.seed, difficulty=d)
        prompts = render_prompts(problems, tokenizer, instruction=args.instruction, max_prompt_tokens=512)
        results = generate(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
        boxed_ok = last_ok = boxed = tokens = 0
        for p, (text, n) in zip(problems, results, strict=False):
            pred_box = extract(text, fallback="none")
            boxed += pred_box is not None
            boxed_ok += pred_box is not None and equal(pred_box, p.answer)
            pred_last = extract(text, fallback="last_number")
            last_ok += pred_last is not None and equal(pred_last, p.answer)
            tokens += n
        for p, (text, _) in list(zip(problems, results, strict=False))[: args.show]:
            print(f"  example d={d} {p.id} gold={p.answer}: {p.question}\n  >>> {text!r}", file=sys.stderr)
        if args.dump:
            with args.dump.open("a", encoding="utf-8") as f:
                for p, (text, n) in zip(problems, results, strict=False):
                    f.write(json.dumps({"id": p.id, "gold": p.answer, "tokens": n, "response": text}) + "\n")
        m = len(problems)
        # One row per difficulty as soon as it is done, so a long run can be cut short.
        print(
            f"| {d} | {boxed_ok / m:.3f} | {last_ok / m:.3f} | {boxed / m:.3f} | {tokens / m:.1f} | {m} "
            f"| {time.time() - t0:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Render problems through the model's chat template into tokenized `Prompt` records.

The token ids are what the sampler receives, so they must equal what vLLM would produce from the same
text. The chat template already writes the special tokens (SmolLM2: the leading `<|im_start|>` is its
BOS), so the rendered text is tokenized with `add_special_tokens=False`; letting the tokenizer add a BOS
as well would double it on models whose tokenizer adds one (Llama 3 and others).

Without a chat template (a base model), the prompt is the plain question and instruction on separate
lines, tokenized with the tokenizer's special tokens (a BOS where the model expects one), which is what
vLLM does with a plain text prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lenrl.errors import LenrlError
from lenrl.records import Problem, Prompt

DEFAULT_INSTRUCTION = "Think step by step and put the final answer in \\boxed{}."


def render_prompts(
    problems: Sequence[Problem],
    tokenizer: Any,
    *,
    instruction: str,
    max_prompt_tokens: int,
    system_prompt: str | None = None,
) -> list[Prompt]:
    """One `Prompt` per problem, in order. Raises LenrlError on the first prompt over the limit."""
    has_template = getattr(tokenizer, "chat_template", None) is not None
    texts = [_render_text(p, tokenizer, instruction, system_prompt, has_template) for p in problems]
    if not texts:
        return []
    # One batched call: the fast (Rust) tokenizer can use several threads; 10k prompts take a few seconds.
    ids_list = tokenizer(texts, add_special_tokens=not has_template)["input_ids"]
    prompts = []
    for problem, text, ids in zip(problems, texts, ids_list):
        if len(ids) > max_prompt_tokens:
            raise LenrlError(
                f"problem {problem.id}: prompt is {len(ids)} tokens, "
                f"over the limit max_prompt_tokens={max_prompt_tokens}"
            )
        prompts.append(Prompt(problem=problem, text=text, token_ids=list(ids)))
    return prompts


def _user_message(problem: Problem, instruction: str) -> str:
    return f"{problem.question}\n{instruction}" if instruction else problem.question


def _render_text(
    problem: Problem, tokenizer: Any, instruction: str, system_prompt: str | None, has_template: bool
) -> str:
    user = _user_message(problem, instruction)
    if not has_template:
        return user if system_prompt is None else f"{system_prompt}\n{user}"
    # Without a system message SmolLM2's template injects its own default one; we pass ours only if given.
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

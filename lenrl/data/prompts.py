"""Render problems through the model's chat template into tokenized `Prompt` records.

The token ids are what the sampler receives, so they must equal what vLLM would produce from the same
text. The chat template already writes the special tokens (SmolLM2: the leading `<|im_start|>` is its
BOS), so the rendered text is tokenized with `add_special_tokens=False`; letting the tokenizer add a BOS
as well would double it on models whose tokenizer adds one (Llama 3 and others).

Without a chat template (a base model), the prompt is the plain question and instruction on separate
lines, tokenized with the tokenizer's special tokens (a BOS where the model expects one), which is what
vLLM does with a plain text prompt.

The instruction may name per-request values in braces: `{budget}` is the token cap the prompt is sampled
under (Train Long, Think Short writes B(t) into the prompt, arXiv 2508.08940 §3.2) and `{column}` any
column of the problem's row (L1 writes "Think for {target_len} tokens.", arXiv 2503.04697 §3). Empty
braces (`\\boxed{}`) are not placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lenrl.errors import LenrlError
from lenrl.records import Problem, Prompt

PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class PromptRenderer:
    """The prompt settings of a run (data.instruction, data.system_prompt, data.max_prompt_tokens) bound
    to the tokenizer; the sampler re-renders with each step's budget when the instruction uses it."""

    tokenizer: Any
    instruction: str
    max_prompt_tokens: int
    system_prompt: str | None = None

    @property
    def uses_budget(self) -> bool:
        return "budget" in PLACEHOLDER.findall(self.instruction)

    def __call__(self, problems: Sequence[Problem], budgets: Sequence[int] | int | None = None) -> list[Prompt]:
        return render_prompts(
            problems,
            self.tokenizer,
            instruction=self.instruction,
            max_prompt_tokens=self.max_prompt_tokens,
            system_prompt=self.system_prompt,
            budgets=budgets,
        )


def fill_instruction(instruction: str, problem: Problem, budget: int | None) -> str:
    """`{budget}` -> the request's token cap, `{column}` -> problem.meta[column]."""

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "budget":
            if budget is None:
                raise LenrlError("data.instruction: {budget} is used but no budget was given")
            return str(budget)
        if key not in problem.meta:
            raise LenrlError(f"data.instruction: placeholder {{{key}}} but problem {problem.id} has no column {key!r}")
        return str(problem.meta[key])

    return PLACEHOLDER.sub(value, instruction)


def render_prompts(
    problems: Sequence[Problem],
    tokenizer: Any,
    *,
    instruction: str,
    max_prompt_tokens: int,
    system_prompt: str | None = None,
    budgets: Sequence[int] | int | None = None,
) -> list[Prompt]:
    """One `Prompt` per problem, in order; `budgets` (one per problem, or one for all) fills `{budget}`.
    Raises LenrlError on the first prompt over the limit."""
    has_template = getattr(tokenizer, "chat_template", None) is not None
    per = budgets if budgets is None or isinstance(budgets, Sequence) else [budgets] * len(problems)
    texts = [
        _render_text(
            p, tokenizer, fill_instruction(instruction, p, None if per is None else per[i]), system_prompt, has_template
        )
        for i, p in enumerate(problems)
    ]
    if not texts:
        return []
    # One batched call: the fast (Rust) tokenizer can use several threads; 10k prompts take a few seconds.
    ids_list = tokenizer(texts, add_special_tokens=not has_template)["input_ids"]
    prompts = []
    for problem, text, ids in zip(problems, texts, ids_list, strict=False):
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

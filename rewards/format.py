"""`format`: rule-based format reward (well-formed tags, a parsable final answer).

Papers using such a term:
- Train Long, Think Short (Hammoud et al., arXiv 2508.08940): R_fmt = α_think·1[well-formed
  <think>…</think>] + α_answer·1[well-formed <answer>…</answer>] (α's not given in the paper).
- Surrogate Signals from Format and Length (Xin et al., arXiv 2505.19439): R_f = 1 iff a
  boxed answer can be parsed and is a valid SymPy expression (`sympy=True`).
- DeepSeek-R1 (arXiv 2501.12948) introduced the think-tag format reward.

The helpers `tag_well_formed`, `answer_parsable` and `sympy_valid` are reused by `surrogate`
(rewards/length_group.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lenrl.reward import RewardInput, RewardOutput, register_reward
from rewards._length import check_choice
from rewards.math_correct import FALLBACKS, extract_answer

MODES = ("all", "mean")
SYMPY_PARSE_TIMEOUT_S = 1
"""Seconds one answer's math-verify parse may take in `sympy_valid` (math-verify's default is 5; its
`signal.alarm` counts whole seconds, so 1 is the least). A reward plugin scores a whole chunk of samples
in one task under the reward timeout, so this bounds what a few pathological answers (thousands of nested
braces) can cost the chunk: chunk size x this (lenrl/reward_runner.py). Ordinary answers parse in
milliseconds."""


def _tag_span(text: str, prompt: str, tag: str) -> tuple[int, int] | None:
    """(start of the opening, start of the closing) of the only `<tag>…</tag>` pair, or None when the
    tag is not well-formed: exactly one opening and one closing, the opening first. An opening that
    ends the prompt (e.g. the DeepSeek-R1 template pre-fills `<think>\\n`) counts as present at -1."""
    open_, close = f"<{tag}>", f"</{tag}>"
    prefilled = prompt.rstrip().endswith(open_)
    n_open = text.count(open_) + prefilled
    if n_open != 1 or text.count(close) != 1:
        return None
    start = -1 if prefilled else text.index(open_)
    end = text.index(close)
    return (start, end) if start < end else None


def tag_well_formed(text: str, prompt: str, tag: str) -> bool:
    return _tag_span(text, prompt, tag) is not None


def tagged_answer(text: str, prompt: str, in_answer_tag: bool) -> tuple[str, bool]:
    """(the text the final answer is read from, whether it is the `<answer>` content): the `<answer>`
    content when asked and well-formed (already past any thinking), else the whole response."""
    span = _tag_span(text, prompt, "answer") if in_answer_tag else None
    return (text[span[0] + len("<answer>") : span[1]], True) if span else (text, False)


def answer_parsable(text: str, fallback: str, thinking: bool) -> str | None:
    """The extracted final answer (the math grader's rule: the last box in the answer span of the run's
    thinking mode, `lenrl.lengths.answer_span`), or None."""
    return extract_answer(text, fallback=fallback, thinking=thinking)


def sympy_valid(pred: str) -> bool:
    """True if math-verify parses `\\boxed{pred}` into a SymPy expression (not just a string) within
    `SYMPY_PARSE_TIMEOUT_S`; a parse that runs out of time is "not parsable" (False) for this answer only.
    Calls math-verify (signal-based timeout): run on a process's main thread, as RewardRunner does."""
    from math_verify import parse

    try:  # on a timeout, math-verify logs it and returns [] (raise_on_error=False)
        parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=SYMPY_PARSE_TIMEOUT_S)
    except Exception:  # odd LaTeX: not a valid expression
        return False
    return bool(parsed) and not isinstance(parsed[0], str)


def _check_tags(tags: Sequence[str]) -> None:
    if isinstance(tags, str) or not all(isinstance(t, str) and t and t.isidentifier() for t in tags):
        raise ValueError(f"format: tags must be a list of tag names like ['think', 'answer'], got {tags!r}")
    if len(set(tags)) != len(tags):
        raise ValueError(f"format: tags must not repeat, got {list(tags)!r}")


def _in_order(text: str, prompt: str, tags: Sequence[str]) -> bool:
    """Each tag's pair closes before the next one's opens (so `<think>` then `<answer>`, no nesting)."""
    spans = [_tag_span(text, prompt, t) for t in tags]
    ok = [sp for sp in spans if sp is not None]
    return len(ok) == len(spans) and all(a[1] < b[0] for a, b in zip(ok, ok[1:], strict=False))


@register_reward("format")
def format_reward(
    x: RewardInput,
    *,
    tags: Sequence[str] = ("think",),
    require_answer: bool = True,
    sympy: bool = False,
    mode: str = "all",
    fallback: str = "none",
) -> RewardOutput:
    """Format reward: well-formed tags and a parsable final answer (TLTS arXiv 2508.08940; Surrogate Signals arXiv
    2505.19439).

    Checks per completion (each 1/0, logged as parts):
      tag_<t>  for t in `tags`: exactly one `<t>` and one `</t>`, opening first; an opening that ends
               the prompt counts (R1-style pre-filled `<think>`). With several tags they must also
               appear in the given order without overlap (`order` part, only when len(tags) > 1).
      answer   (require_answer) a final answer is extracted by the `math` grader's rule (last
               `\\boxed{}` in the answer span of the run's thinking mode x.thinking, `fallback` as
               there); read inside `<answer>…</answer>` when "answer" is one of `tags`.
      sympy    (sympy=True, Surrogate Signals' R_f) the answer parses to a SymPy expression.
    score: mode="all" -> 1.0 iff every check passes (Surrogate's R_f with tags=[] and sympy=True);
    mode="mean" -> the plain mean of EVERY check above, `order` included: with tags=[think, answer] and
    require_answer=False it is (tag_think + tag_answer + order)/3, a three-way mean (TLTS's α_think =
    α_answer form has no order term: use tags=[think] or mode="all" to avoid it); with tags=[think] and
    require_answer it is (tag_think + answer)/2. Scale by the reward's weight.
    Shapes: x (B samples) -> score_B (B,) float32; no correct_B (no ground truth is used).
    """
    _check_tags(tags)
    check_choice("format", "mode", mode, MODES)
    check_choice("format", "fallback", fallback, FALLBACKS)
    checks: dict[str, list[float]] = {f"tag_{t}": [] for t in tags}
    if len(tags) > 1:
        checks["order"] = []
    if require_answer or sympy:
        checks["answer"] = []
    if sympy:
        checks["sympy"] = []
    for text, prompt in zip(x.completions, x.prompts, strict=True):
        for t in tags:
            checks[f"tag_{t}"].append(float(tag_well_formed(text, prompt, t)))
        if len(tags) > 1:
            ok = all(checks[f"tag_{t}"][-1] for t in tags) and _in_order(text, prompt, tags)
            checks["order"].append(float(ok))
        if "answer" in checks:
            span, tagged = tagged_answer(text, prompt, "answer" in tags)
            pred = answer_parsable(span, fallback, x.thinking and not tagged)
            checks["answer"].append(float(pred is not None))
            if sympy:
                checks["sympy"].append(float(pred is not None and sympy_valid(pred)))
    parts = {k: torch.tensor(v, dtype=torch.float32) for k, v in checks.items()}
    if not parts:
        return RewardOutput(score_B=torch.ones(len(x), dtype=torch.float32))
    stacked = torch.stack(list(parts.values()))
    score = stacked.min(0).values if mode == "all" else stacked.mean(0)
    return RewardOutput(score_B=score.float(), parts=parts)

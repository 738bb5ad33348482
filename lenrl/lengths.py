"""Length counting and the thinking / answer split, shared by rollouts, rewards, grading and evaluation.

Lengths are tokens of the policy's tokenizer, never characters (docs/algorithms.md §12.1: verl's
`valid_response_length` counts every generated token including EOS; that is `Rollout.response_len`).

The thinking span is the prefix of the response up to and including the LAST `</think>`; the answer span
is the rest. Whether a response without `</think>` has an answer is the run's thinking mode
(`model.thinking`): with a thinking template (R1-style, `<think>` pre-filled in the prompt) the response
is still thinking and has no answer, as in DLER's official reward; without one the whole text is the
answer. `answer_span` is the one place that rule lives; the grader, the format rewards and `lenrl eval`
all read answers through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

END_THINK = "</think>"


def answer_span(text: str, *, thinking: bool) -> str | None:
    """The answer part of a response: the text after the last `</think>`; without one, the whole text
    (thinking off) or None (thinking on: the response never left its thinking span)."""
    if END_THINK in text:
        return text.rsplit(END_THINK, 1)[1]
    return None if thinking else text


def think_span_tokens(
    response_ids: Sequence[int], text: str, decode: Callable[[Sequence[int]], str], marker: str = END_THINK
) -> int:
    """Number of leading tokens of `response_ids` whose decoded text contains the last `marker` (the
    thinking span that `answer_span` splits off).

    Returns 0 when `text` has no marker (unclosed thinking, or no thinking at all: `Rollout.think_len`).
    Token-exact without assuming how the tokenizer splits the marker: binary search for the shortest
    prefix whose decoding reaches the marker's end (O(log T) decodes per response).
    """
    pos = text.rfind(marker)
    if pos < 0:
        return 0
    target = pos + len(marker)
    lo, hi = 1, len(response_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(response_ids[:mid])) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo

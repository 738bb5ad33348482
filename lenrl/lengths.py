"""Length counting shared by rollouts, rewards and evaluation.

Lengths are tokens of the policy's tokenizer, never characters (algorithms.md §12.1: verl's
`valid_response_length` counts every generated token including EOS; that is `Rollout.response_len`).
The thinking span is the prefix of the response up to and including `</think>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

END_THINK = "</think>"


def think_span_tokens(
    response_ids: Sequence[int], text: str, decode: Callable[[Sequence[int]], str], marker: str = END_THINK
) -> int:
    """Number of leading tokens of `response_ids` whose decoded text contains the first `marker`.

    Returns 0 when `text` has no marker. Token-exact without assuming how the tokenizer splits the
    marker: binary search for the shortest prefix whose decoding reaches the marker's end
    (O(log T) decodes per response).
    """
    pos = text.find(marker)
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

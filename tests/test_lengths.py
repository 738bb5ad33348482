"""`think_span_tokens`: the thinking span in tokens, exact whatever way the tokenizer splits `</think>`."""

from __future__ import annotations

import pytest

from lenrl.lengths import END_THINK, think_span_tokens


def _chars(ids):  # a character "tokenizer": token i is chr(i)
    return "".join(chr(i) for i in ids)


def test_character_tokens_count_up_to_and_including_the_marker():
    text = "ab</think>cd"
    ids = [ord(c) for c in text]
    assert think_span_tokens(ids, text, _chars) == 10  # "ab" + the 8 characters of "</think>"


def test_no_marker_is_zero_and_the_last_marker_ends_the_span():
    # The grader's answer span starts after the LAST `</think>` (lenrl.lengths.answer_span), so the
    # thinking span runs up to and including it: "x</think>y</think>" is 1 + 8 + 1 + 8 = 18 tokens.
    assert think_span_tokens([ord(c) for c in "abc"], "abc", _chars) == 0
    text = "x</think>y</think>z"
    assert think_span_tokens([ord(c) for c in text], text, _chars) == 2 + 2 * len(END_THINK)


def test_marker_split_across_multi_character_tokens():
    # Tokens: "ok", "</th", "ink>an", "swer": the marker ends inside token 3, so the span is 3 tokens.
    vocab = {1: "ok", 2: "</th", 3: "ink>an", 4: "swer"}

    def decode(ids):
        return "".join(vocab[i] for i in ids)

    assert think_span_tokens([1, 2, 3, 4], decode([1, 2, 3, 4]), decode) == 3
    # The marker as one whole token at the very start
    vocab[5] = END_THINK
    assert think_span_tokens([5, 4], decode([5, 4]), decode) == 1


@pytest.mark.parametrize("prefix", ["", "Let me think. 2+3=5.", "a" * 50])
def test_real_tokenizer(prefix, smol_tokenizer):
    text = f"{prefix}</think>The answer is \\boxed{{5}}."
    ids = smol_tokenizer(text, add_special_tokens=False)["input_ids"]
    n = think_span_tokens(ids, text, smol_tokenizer.decode)
    assert END_THINK in smol_tokenizer.decode(ids[:n])
    assert END_THINK not in smol_tokenizer.decode(ids[: n - 1])

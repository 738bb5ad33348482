"""The testbed tokenizer: one token per printable ASCII character, plus the whole pieces of `task.PIECES`.

A few dozen symbols keep the embedding and output layer, which dominate a tiny model's cost, small
(docs/benchmarks.md: small vocabularies are what make small models fast). `<think>`, `</think>`,
`\\boxed{` and the default instruction are ordinary (not special) added tokens: they are matched before
the per-character split and survive decoding with `skip_special_tokens=True`, which vLLM applies to its
output text, so graders and the thinking-span length see `</think>`. `<eos>` ends every response; `<pad>` pads batches.

The chat template writes the user turn, a newline, and opens the thinking span as the generation prompt:
`3+4-2=?\\n<instruction>\\n<think>\\n`, so responses start inside `<think>` (model.thinking=true).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from lenrl.testbed.task import PIECES

EOS, PAD = "<eos>", "<pad>"
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # printable ASCII and "\n"
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}"
    "{% else %}{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<think>\n{% endif %}"
)


def vocabulary() -> dict[str, int]:
    """Token -> id: specials first, then characters, then the multi-character pieces."""
    tokens = [PAD, EOS, *CHARS, *PIECES]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer() -> Any:
    """A `PreTrainedTokenizerFast` (WordLevel over characters) with the chat template above."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
    tok = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, EOS)])
    tok.add_tokens([AddedToken(p, special=False, normalized=False) for p in PIECES])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(path: Path) -> Any:
    tok = build_tokenizer()
    tok.save_pretrained(path)
    return tok

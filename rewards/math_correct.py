"""`math_correct`: binary rule-based correctness of a final math answer (algorithms.md §11.2, §1.1).

Rule, per completion:

1. Answer span: the text after the LAST `</think>` if there is one. With `require_think_close=True` a
   completion without `</think>` is wrong (DLER's deepscaler grader requires the closing tag).
2. Extraction: the LAST `\\boxed{...}` / `\\fbox{...}` with brace matching (escaped braces `\\{ \\}` do
   not count), or `\\boxed 5` (argument up to the next space or `$`, minus a trailing `.`). A last box
   that never closes is no answer (a truncated box is not graded, and no fallback is tried).
3. No box at all: `fallback="last_number"` takes the last number in the span (GSM8K style: `1,234` ->
   `1234`, negatives and decimals allowed); `fallback="none"` makes the completion wrong.
4. Equivalence: an exact match after light normalisation (spaces, `\\left`/`\\right`, `\\dfrac`/`\\tfrac`
   -> `\\frac`, `$`, trailing `.`) OR math-verify: `verify(parse(gold), parse("\\boxed{pred}"))`, where
   a gold without a box or `$` is wrapped as `$gold$` (math-verify does not extract bare LaTeX).

score_B is 1.0 / 0.0, correct_B the same as bool, parts["boxed"] is 1.0 where a complete box was found.
math-verify keeps its own `signal.alarm` timeouts, so call this from a process's main thread (the
RewardRunner workers do).
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import torch

from lenrl.reward import RewardInput, RewardOutput, register_grader, register_reward

FALLBACKS = ("none", "last_number")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")  # a math delimiter, not an escaped `\$` (currency)
# A minus sign right after a word character or a closing bracket is a binary operator, not a sign.
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w)\]])-?\.\d+")


def _check_fallback(fallback: str) -> None:
    if fallback not in FALLBACKS:
        raise ValueError(f"math_correct: unknown fallback {fallback!r}; expected one of {FALLBACKS}")


def _braced(text: str, start: int) -> str | None:
    """Content of the `{...}` opening at text[start], or None if it never closes."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":  # skip the escaped char, so `\{` and `\}` do not count
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> tuple[bool, str | None]:
    """(a box command was found, its content); content None when the last box never closes."""
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return False, None
    end = matches[-1].end()
    rest = text[end:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        return True, _braced(text, end + len(rest) - len(stripped))
    if stripped and (len(stripped) < len(rest) or stripped[0].isdigit()):
        # `\boxed 5` / `\boxed5`: one token, up to whitespace or a closing `$` (as in MATH's grader)
        token = re.match(r"[^\s$]+", stripped)
        return True, (token.group(0).rstrip(".") or None) if token else None
    return True, None


def last_number(text: str) -> str | None:
    found = _NUMBER_RE.findall(text)
    return found[-1].replace(",", "") if found else None


def _answer_span(text: str, require_think_close: bool) -> str | None:
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    return None if require_think_close else text


def extract_answer(text: str, *, fallback: str = "none", require_think_close: bool = False) -> str | None:
    """The final answer string of a completion by the rule above, or None when there is none."""
    _check_fallback(fallback)
    span = _answer_span(text, require_think_close)
    if span is None:
        return None
    found, content = last_boxed(span)
    if found:
        return content.strip() if content is not None and content.strip() else None
    return last_number(span) if fallback == "last_number" else None


def normalize(s: str) -> str:
    """Light normalisation for the exact-match shortcut (not a full MATH normaliser)."""
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s).replace("$", "")
    return s.rstrip(".")


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> Any:
    # Cached: the G completions of a group share one gold answer.
    from math_verify import parse

    if "\\boxed" in gold or "\\fbox" in gold or _DOLLAR_RE.search(gold):
        return parse(gold)
    return parse(f"${gold}$")


def is_equivalent(pred: str, gold: str) -> bool:
    """True if `pred` (an extracted answer, no box) matches the reference answer `gold`."""
    if pred is None:
        return False
    if normalize(pred) == normalize(gold):
        return True
    if threading.current_thread() is not threading.main_thread():
        # math-verify would raise ValueError here, which the except below would turn into "wrong".
        raise RuntimeError("is_equivalent needs a main thread (math-verify times out with signal.alarm)")
    from math_verify import parse, verify

    try:
        gold_parsed = _parse_gold(gold)
        if not gold_parsed:
            return False
        return bool(verify(gold_parsed, parse(f"\\boxed{{{pred}}}")))
    except Exception:  # math-verify may raise on odd LaTeX; an unparseable answer is simply not correct
        return False


@register_grader("math")
def math_grader(completion: str, answer: str, *, thinking: bool, fallback: str = "none") -> bool:
    """True if the completion's final answer (rule above; with `thinking`, only after `</think>`) is
    equivalent to `answer`."""
    pred = extract_answer(completion, fallback=fallback, require_think_close=thinking)
    return pred is not None and is_equivalent(pred, answer)


@register_reward("math_correct")
def math_correct(x: RewardInput, *, fallback: str = "none", require_think_close: bool = False) -> RewardOutput:
    """1.0 if the extracted final answer is equivalent to the reference answer, else 0.0."""
    _check_fallback(fallback)
    scores, boxed = [], []
    for text, gold in zip(x.completions, x.answers, strict=True):
        span = _answer_span(text, require_think_close)
        boxed.append(span is not None and last_boxed(span)[1] is not None)
        pred = extract_answer(text, fallback=fallback, require_think_close=require_think_close)
        scores.append(pred is not None and is_equivalent(pred, gold))
    correct_B = torch.tensor(scores, dtype=torch.bool)
    return RewardOutput(
        score_B=correct_B.float(),
        correct_B=correct_B,
        parts={"boxed": torch.tensor(boxed, dtype=torch.float32)},
    )

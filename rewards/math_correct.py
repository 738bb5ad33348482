"""The `math` grader and the `math_correct` reward: rule-based correctness of a final math answer
(docs/algorithms.md §11.2, §1.1).

The grader (`math_grader`, registered as "math") decides each sample's correctness ONCE, in the
RewardRunner's workers, before any reward runs; every reward then reads that verdict from
`RewardInput.correct_B`. Rule, per completion:

1. Answer span (`lenrl.lengths.answer_span`): the text after the LAST `</think>`; without one, the whole
   text, or no answer at all when the run thinks (`model.thinking`: DLER's grader requires `</think>`).
2. Extraction: the LAST `\\boxed{...}` / `\\fbox{...}` with brace matching (escaped braces `\\{ \\}` do
   not count), or `\\boxed 5` (argument up to the next space or `$`, minus a trailing `.`). A last box
   that never closes is no answer (a truncated box is not graded, and no fallback is tried).
3. No box at all: `fallback="last_number"` takes the last number in the span (GSM8K style: `1,234` ->
   `1234`, negatives and decimals allowed); `fallback="none"` makes the completion wrong.
4. Notation (`canonical`, on both sides, before comparing): degree marks dropped (`30°`, `30\\degree`,
   `30^\\circ`, `30^{\\circ}` -> `30`); e-notation as a power of ten (`1.45e6` -> `1.45\\times10^{6}`,
   any exponent; math-verify would read Euler's e; `2e`, `e^2` stay e); digit groups joined only where
   they are thousands groups (1-3 digits, then groups of exactly 3, not followed by `/` or a decimal
   point: `5\\,600`, `5{,}600`, `5\\!600`, `5 600`, `1{,}000{,}000`; math-verify reads `5\\,600` as 605), and
   `{,}` before any other group is LaTeX's decimal comma (`3{,}14` -> `3.14`, `0{,}5` -> `0.5`); any other
   spacing (`12\\,3`, `2\\,1/2`) and a trailing `\\ ` become spaces, never a joined number.
5. Equivalence: an exact match after light normalisation (spaces, except one between two digits;
   `\\left`/`\\right`, `\\dfrac`/`\\tfrac` -> `\\frac`, `$`, trailing `.`) OR math-verify:
   `verify(parse(gold), parse("\\boxed{pred}"))`, where a gold without a box or `$` is wrapped as `$gold$`
   (math-verify does not extract bare LaTeX).

math-verify keeps its own `signal.alarm` timeouts, so grade on a process's main thread (the RewardRunner
workers do, each sample under its own timeout). Its timeout warnings quote the whole input (up to tens of
KB); `TruncateLog` cuts them to one short line.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

import torch

from lenrl.lengths import answer_span
from lenrl.reward import RewardInput, RewardOutput, graded, register_grader, register_reward

FALLBACKS = ("none", "last_number")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")  # a math delimiter, not an escaped `\$` (currency)
# A minus sign right after a word character or a closing bracket is a binary operator, not a sign.
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w)\]])-?\.\d+")

# Notation (rule 4). Degrees: only the superscript forms of \circ (a bare \circ is composition).
_DEGREE_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\(?:text)?degree(?![A-Za-z])|°")
_ENOTATION_RE = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
# thin/medium/thick/negative/control space, `{,}` (a comma without its space), a plain space
_DIGIT_SEP = r"\\[,;:!]|\{,\}|\\ | "
_DIGIT_SEP_RE = re.compile(_DIGIT_SEP)
# A whole run of digit groups; `_digit_groups` decides what it means. Not after a digit or a decimal point.
_DIGIT_RUN_RE = re.compile(rf"(?<![\d.])\d+(?:(?:{_DIGIT_SEP})\d+)+")
_SPACE_CMD_RE = re.compile(r"(?<!\\)\\[,;: ]")  # thin/medium/thick/control space; not `\\` + space
_NEG_SPACE_RE = re.compile(r"(?<!\\)\\!")
_NEG_SPACE_DIGITS_RE = re.compile(r"(?<=\d)\\!(?=\d)")  # left between digits by the group rule: two numbers
_SPACES_RE = re.compile(r"\s+")
LOG_CHARS = 200


class TruncateLog(logging.Filter):
    """Cuts a log record's message to `LOG_CHARS` characters, on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = " ".join(record.getMessage().split())
        record.msg = msg if len(msg) <= LOG_CHARS else f"{msg[:LOG_CHARS]}... [{len(msg)} chars]"
        record.args = ()
        return True


# Filters apply only to records logged on the logger itself (not on propagation), so each module's.
for _name in ("math_verify.parser", "math_verify.grader", "math_verify.metric", "math_verify.utils"):
    logging.getLogger(_name).addFilter(TruncateLog())


def _check_fallback(fallback: str) -> None:
    if fallback not in FALLBACKS:
        raise ValueError(f"math: unknown fallback {fallback!r}; expected one of {FALLBACKS}")


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


def extract_answer(text: str, *, fallback: str = "none", thinking: bool = False) -> str | None:
    """The final answer string of a completion by the rule above, or None when there is none."""
    _check_fallback(fallback)
    span = answer_span(text, thinking=thinking)
    if span is None:
        return None
    found, content = last_boxed(span)
    if found:
        return content.strip() if content is not None and content.strip() else None
    return last_number(span) if fallback == "last_number" else None


def _times_ten(m: re.Match[str]) -> str:
    """`<m>e<k>` -> `<m>\\times10^{<k>}`: math-verify reads the power exactly, whatever the exponent."""
    mantissa = m.group(1).rstrip(".")
    mantissa = f"0{mantissa}" if mantissa.startswith(".") else mantissa
    return f"{mantissa}\\times10^{{{int(m.group(2))}}}"


def _digit_groups(m: re.Match[str]) -> str:
    """A run of digits split by LaTeX spacing or `{,}` (rule 4): thousands groups joined; a lone `{,}` before
    any other group is the decimal comma; anything else left for the spacing rule (spaces, not digits)."""
    run = m.group(0)
    after = m.string[m.end() : m.end() + 2]
    if after.startswith("/") or re.match(r"\.\d", after):  # `1\,000/3`, `1\,000.5`: not a plain integer
        return run
    groups = _DIGIT_SEP_RE.split(run)
    if len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups)
    if _DIGIT_SEP_RE.findall(run) == ["{,}"]:
        return f"{groups[0]}.{groups[1]}"
    return run


def canonical(s: str) -> str:
    """Rule 4: the answer's notation made plain (degrees, e-notation, LaTeX spacing), both sides."""
    s = _DEGREE_RE.sub("", s)
    s = _DIGIT_RUN_RE.sub(_digit_groups, s)
    s = _NEG_SPACE_DIGITS_RE.sub(" ", s)
    s = _NEG_SPACE_RE.sub("", s)
    s = _SPACE_CMD_RE.sub(" ", s)
    s = _ENOTATION_RE.sub(_times_ten, s).strip()
    if s.endswith("\\") and not s.endswith("\\\\"):  # `12\ ` once its space was stripped: a lone `\`
        s = s[:-1].rstrip()
    return s


def normalize(s: str) -> str:
    """Light normalisation for the exact-match shortcut and majority voting (not a full MATH normaliser)."""
    s = canonical(s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACES_RE.sub(_space_or_nothing, s).replace("$", "")
    return s.rstrip(".")


def _space_or_nothing(m: re.Match[str]) -> str:
    """Spaces go, except one between two digits: `12\\,3` (-> `12 3`) is not the number 123."""
    before, after = m.string[m.start() - 1 : m.start()], m.string[m.end() : m.end() + 1]
    return " " if before.isdigit() and after.isdigit() else ""


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> Any:
    # Cached: the G completions of a group share one gold answer.
    from math_verify import parse

    if "\\boxed" in gold or "\\fbox" in gold or _DOLLAR_RE.search(gold):
        return parse(gold)
    return parse(f"${gold}$")


def is_equivalent(pred: str | None, gold: str) -> bool:
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
        gold_parsed = _parse_gold(canonical(gold))
        if not gold_parsed:
            return False
        return bool(verify(gold_parsed, parse(f"\\boxed{{{canonical(pred)}}}")))
    except Exception:  # math-verify may raise on odd LaTeX; an unparseable answer is simply not correct
        return False


@register_grader("math")
def math_grader(completion: str, answer: str, *, thinking: bool, fallback: str = "none") -> bool:
    """True if the completion's final answer (rules 1-3; with `thinking`, only after `</think>`) is
    equivalent to `answer` (rules 4-5)."""
    pred = extract_answer(completion, fallback=fallback, thinking=thinking)
    return pred is not None and is_equivalent(pred, answer)


@register_reward("math_correct")
def math_correct(x: RewardInput) -> RewardOutput:
    """1.0 where the run's grader judged the answer correct (x.correct_B, graded once per sample), else 0.0.

    No grading happens here: the verifier and its parameters are the run's `grader` (e.g. `math` with
    `fallback`), and the thinking mode is `model.thinking` (x.thinking).
    Shapes: (B,) -> score_B (B,) float32; parts["boxed"] = 1.0 where the answer span holds a complete box.
    """
    c = graded(x)
    boxed = []
    for text in x.completions:
        span = answer_span(text, thinking=x.thinking)
        boxed.append(span is not None and last_boxed(span)[1] is not None)
    return RewardOutput(score_B=c.float(), parts={"boxed": torch.tensor(boxed, dtype=torch.float32)})

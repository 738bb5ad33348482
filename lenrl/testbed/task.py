"""The testbed task: seeded chains of small additions and subtractions whose shortest correct trace is known.

A problem is a start value and 1..max_steps operations (`3+4-2+1`; 1-5 in the default recipe); operands
are 1..max_operand and every running value stays in 0..max_value, so the model has few arithmetic facts
to learn and the number of steps carries the difficulty (docs/testbed.md: the number range, not the
format, is what costs training time). The response opens inside the thinking span (the chat template
writes `<think>\\n`):

    minimal:  3+4=7\\n7-2=5\\n5+1=6\\n</think>\\boxed{6}
    verbose:  question: 3+4-2+1\\n3+4=7\\ncheck 3+4=7 ok\\n7-2=5\\nwait, 7-2=5\\n5+1=6\\n
              verify 5+1=6 ok\\n</think>\\boxed{6}

Every step line `a+b=c` is necessary (the next one starts from c, the box holds the last c); nothing else is.
The verbose trace adds the redundancy reasoning models show (restating the question, re-checking a finished
step, "wait" lines that recompute it, a final re-verification). How much is drawn from its own random
stream, seeded by (seed, index) and the number of steps only, so it is independent of the values and of
whether an answer is right: shortening is learnable without touching accuracy.

Token lengths are those of the testbed tokenizer (lenrl/testbed/tokenizer.py): one token per character,
except the whole-word pieces in `PIECES`. `min_len` (L*) counts the minimal response plus its EOS token, as
a rollout's response length does (docs/algorithms.md §12.1). Pure Python: no torch, no tokenizers.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from lenrl.errors import LenrlError
from lenrl.records import Problem

THINK_OPEN, THINK_CLOSE, BOX_OPEN = "<think>", "</think>", "\\boxed{"
DEFAULT_INSTRUCTION = "Think step by step and put the final answer in \\boxed{}."
BUDGET_PHRASES = ("Think for {n} tokens.", "Think for maximum {n} tokens.", "Use exactly {n} tokens.")
"""Token budgets the presets write after the default instruction: L1-Exact and L1-Max ("Think for [maximum]
N tokens.", arXiv 2503.04697 §3) and the curriculum's "Use exactly N tokens." (arXiv 2508.08940 §3.2). The
SFT data holds them with random N so the built model reads such prompts as well as plain ones; its trace
never depends on N (following the budget is what L1 and the curriculum must teach)."""
BUDGET_SHARE = 0.5
"""fraction of SFT prompts that carry a budget phrase"""
BUDGET_RANGE = (8, 400)
# Multi-character tokens of the testbed tokenizer (longest first when matching); everything else is one
# character per token. The default instruction and the budget phrases' words are single tokens so prompts
# stay short.
PIECES = (
    DEFAULT_INSTRUCTION,
    THINK_CLOSE,
    THINK_OPEN,
    BOX_OPEN,
    *("Think for maximum ", "Think for ", "Use exactly ", " tokens."),
)
HELD_OUT_PERCENT = 20
"""problems whose expression hashes into this percentage form the held-out split (never trained on)"""


@dataclass(frozen=True)
class TaskSpec:
    """The task half of a testbed recipe."""

    min_steps: int = 1
    max_steps: int = 6
    max_operand: int = 5
    max_value: int = 19
    redundancy: float = 1.0
    """scales the probability of every redundant line (0: minimal traces only)"""
    skip_share: float = 0.0
    """under-thinking: this share of the training traces of 2+ steps stops early (`skipped_trace`), so that
    short reasoning is a learnable and harmful habit (the `underthink` recipe; docs/thinkedit.md)"""

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise LenrlError(f"testbed: need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if not (self.max_operand >= 1 and 2 * self.max_operand <= self.max_value):
            raise LenrlError(f"testbed: need 1 <= max_operand <= max_value/2, got {self.max_operand}, {self.max_value}")
        if not 0 <= self.redundancy <= 2:
            raise LenrlError(f"testbed: redundancy must be in [0, 2], got {self.redundancy}")
        if not 0 <= self.skip_share <= 1:
            raise LenrlError(f"testbed: skip_share must be in [0, 1], got {self.skip_share}")

    def check_difficulty(self, steps: int) -> None:
        if not self.min_steps <= steps <= self.max_steps:
            raise LenrlError(f"testbed: difficulty {steps} outside the range {self.min_steps}..{self.max_steps} steps")


@dataclass(frozen=True)
class Chain:
    start: int
    ops: tuple[int, ...]
    """signed operands: +4 adds 4, -2 subtracts 2"""

    @property
    def steps(self) -> int:
        return len(self.ops)

    @property
    def values(self) -> list[int]:
        """Running values after each step."""
        out, v = [], self.start
        for k in self.ops:
            v += k
            out.append(v)
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def expression(self) -> str:
        return f"{self.start}" + "".join(f"{k:+d}" for k in self.ops)

    def step_lines(self) -> list[str]:
        """The necessary lines `a+b=c`, in order."""
        prev = [self.start, *self.values[:-1]]
        return [f"{a}{k:+d}={a + k}" for a, k in zip(prev, self.ops, strict=True)]


def parse_expression(expr: str) -> Chain:
    """`3+4-2` -> Chain(3, (4, -2)); inverse of `Chain.expression`."""
    num, start, ops = "", None, []
    for ch in expr + "+":
        if ch in "+-" and num not in ("", "+", "-"):
            if start is None:
                start = int(num)
            else:
                ops.append(int(num))
            num = ch
        else:
            num += ch
    if start is None or not ops:
        raise LenrlError(f"testbed: not an expression of at least one step: {expr!r}")
    return Chain(start, tuple(ops))


def token_count(text: str) -> int:
    """Tokens of `text` under the testbed tokenizer (no EOS): PIECES count one each, other characters one each."""
    n = i = 0
    while i < len(text):
        piece = next((p for p in PIECES if text.startswith(p, i)), None)
        i += len(piece) if piece else 1
        n += 1
    return n


def question(chain: Chain) -> str:
    return f"{chain.expression}=?"


def minimal_trace(chain: Chain) -> str:
    """The shortest correct response: every step line, then the boxed answer."""
    return "".join(f"{line}\n" for line in chain.step_lines()) + f"{THINK_CLOSE}{BOX_OPEN}{chain.answer}}}"


def min_len(chain: Chain) -> int:
    """L*: tokens of the minimal response, EOS included."""
    return token_count(minimal_trace(chain)) + 1


@dataclass(frozen=True)
class Padding:
    """Which redundant lines a verbose trace gets; drawn from the number of steps and a random stream only."""

    restate: bool
    checks: tuple[int, ...]
    """per step: re-check lines after it"""
    waits: tuple[int, ...]
    """per step: "wait" lines recomputing it"""
    verify: bool


def draw_padding(steps: int, rng: random.Random, redundancy: float = 1.0) -> Padding:
    """A verbosity level v ~ U(0.25, 1) per trace sets the chance of every optional line, so trace lengths
    spread from about L* to about 5x L* (3x on average)."""
    v = min(1.0, rng.uniform(0.25, 1.0) * redundancy)

    def count(p: float, most: int) -> int:
        return sum(rng.random() < p for _ in range(most))

    checks = tuple(count(v * 0.5, 2) for _ in range(steps))
    waits = tuple(count(v * 0.5, 1) for _ in range(steps))
    return Padding(rng.random() < v, checks, waits, rng.random() < v)


def verbose_trace(chain: Chain, pad: Padding) -> str:
    """The minimal trace with the redundant lines of `pad` inserted; the step lines stay, in order."""
    lines = [f"question: {chain.expression}"] if pad.restate else []
    for i, line in enumerate(chain.step_lines()):
        lines.append(line)
        lines += [f"check {line} ok"] * pad.checks[i]
        lines += [f"wait, {line}"] * pad.waits[i]
    if pad.verify:  # re-verify the final step (a local copy: re-copying the whole chain costs a tiny model accuracy)
        lines.append(f"verify {chain.step_lines()[-1]} ok")
    return "".join(f"{line}\n" for line in lines) + f"{THINK_CLOSE}{BOX_OPEN}{chain.answer}}}"


def skipped_steps(steps: int, seed: int, index: int, share: float) -> int | None:
    """How many necessary steps training trace `index` writes before it stops early; None (the usual
    case) when it does not. Its own random stream, like the padding's, independent of the values."""
    if steps < 2 or share <= 0:
        return None
    rng = random.Random(f"lenrl-testbed-skip:{seed}:{index}")
    return rng.randint(1, steps - 1) if rng.random() < share else None


def skipped_trace(chain: Chain, done: int) -> str:
    """The first `done` step lines, no redundancy, then the running value boxed as if it were the answer:
    wrong unless the skipped operations cancel out. The under-thinking a weight edit should repair."""
    lines = chain.step_lines()[:done]
    return "".join(f"{line}\n" for line in lines) + f"{THINK_CLOSE}{BOX_OPEN}{chain.values[done - 1]}}}"


def training_trace(chain: Chain, spec: TaskSpec, seed: int, index: int) -> str:
    """SFT trace `index` of a batch drawn with `seed`: skipped (a `skip_share` of the time) or verbose."""
    done = skipped_steps(chain.steps, seed, index, spec.skip_share)
    if done is not None:
        return skipped_trace(chain, done)
    return verbose_trace(chain, padding_for(chain.steps, seed, index, spec.redundancy))


def instruction_for(seed: int, index: int) -> str:
    """The instruction of SFT trace `index`: the default one, or (a BUDGET_SHARE of the time) the default one
    followed by a budget phrase with N ~ U{BUDGET_RANGE}; its own stream, independent of chain and padding."""
    rng = random.Random(f"lenrl-testbed-instr:{seed}:{index}")
    if rng.random() >= BUDGET_SHARE:
        return DEFAULT_INSTRUCTION
    phrase = rng.choice(BUDGET_PHRASES).format(n=rng.randint(*BUDGET_RANGE))
    return f"{DEFAULT_INSTRUCTION} {phrase}"


def is_held_out(chain: Chain) -> bool:
    """Content hash split: the same expression is always on the same side, whatever seed drew it."""
    h = int.from_bytes(hashlib.sha256(chain.expression.encode()).digest()[:4], "big")
    return h % 100 < HELD_OUT_PERCENT


def draw_chain(rng: random.Random, steps: int, spec: TaskSpec) -> Chain:
    """Start in 1..max_value-max_operand, then `steps` operations keeping every value in 0..max_value."""
    value = rng.randint(1, spec.max_value - spec.max_operand)
    start, ops = value, []
    for _ in range(steps):
        choices = [k for k in range(1, spec.max_operand + 1) if value + k <= spec.max_value]
        choices += [-k for k in range(1, spec.max_operand + 1) if value - k >= 0]
        k = rng.choice(choices)
        ops.append(k)
        value += k
    return Chain(start, tuple(ops))


SPLITS = ("train", "test")


def chains(spec: TaskSpec, n: int, *, split: str, seed: int, steps: int | None = None) -> list[Chain]:
    """`n` chains of `split` (train or test: disjoint by `is_held_out`), deterministic per (spec, seed);
    difficulty uniform over min_steps..max_steps unless `steps` fixes it. A smaller n gives a prefix."""
    if split not in SPLITS:
        raise LenrlError(f"testbed: split must be train or test, got {split!r}")
    if steps is not None:
        spec.check_difficulty(steps)
    key = f"{spec.min_steps}-{spec.max_steps}:{spec.max_operand}:{spec.max_value}"
    rng = random.Random(f"lenrl-testbed:{seed}:{split}:{key}")
    out: list[Chain] = []
    while len(out) < n:
        c = draw_chain(rng, steps or rng.randint(spec.min_steps, spec.max_steps), spec)
        if is_held_out(c) == (split == "test"):
            out.append(c)
    return out


def padding_for(steps: int, seed: int, index: int, redundancy: float = 1.0) -> Padding:
    """The padding of trace `index`: its own stream, so it does not depend on the chain's values."""
    return draw_padding(steps, random.Random(f"lenrl-testbed-pad:{seed}:{index}"), redundancy)


ID_PREFIX = "testbed-"


def problems(spec: TaskSpec, n: int, *, split: str, seed: int, steps: int | None = None) -> list[Problem]:
    """`chains` as `Problem` records: meta holds `difficulty` (steps) and `min_len` (L*). The id ends in the
    expression, so evaluation metrics can recover both from a sample's question id alone (`parse_id`)."""
    cs = chains(spec, n, split=split, seed=seed, steps=steps)
    return [to_problem(c, f"{split}-{seed}-{i:06d}") for i, c in enumerate(cs)]


def to_problem(c: Chain, key: str) -> Problem:
    return Problem(
        id=f"{ID_PREFIX}{key}:{c.expression}",
        question=question(c),
        answer=str(c.answer),
        meta={"task": "testbed", "difficulty": c.steps, "min_len": min_len(c)},
    )


def parse_id(qid: str) -> Chain | None:
    """The chain of a testbed problem id; None for any other id."""
    if not qid.startswith(ID_PREFIX) or ":" not in qid:
        return None
    try:
        return parse_expression(qid.rsplit(":", 1)[1])
    except (LenrlError, ValueError):
        return None

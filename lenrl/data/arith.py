"""Built-in task: seeded, procedurally generated arithmetic word problems with integer answers.

Why a built-in task: the embedded model (SmolLM2-135M-Instruct) is too weak for GSM8K or MATH; its
accuracy there is about zero, and with zero accuracy every rollout in a group gets the same correctness
reward, so group-relative RL has no signal. Short word problems over small numbers give it a non-zero
starting accuracy (docs/benchmarks.md#embedded-model-on-the-arith-task), need no network or data files, and come with a
`difficulty` knob so the task can grow with the model. Answers are never negative and are checkable
by re-applying `meta["ops"]` to `meta["start"]` (see `evaluate`).

Difficulty d (int >= 0):
  * d = 0: one addition of numbers 1-5, preceded by a worked example whose answer is written as
    \\boxed{N}. The model almost never boxes an answer on its own (benchmarks/arith_calibration.py), so
    without the demonstration a boxed-only grader sees zero accuracy even on one-step problems.
  * d = 1: one addition or subtraction, numbers 1-9 ("Tom has 8 apples and buys 6 more. ...").
  * d >= 2: d operations, numbers up to 10*d.
  * d >= 3: operations may also add groups ("buys 3 bags with 4 apples in each": + 3*4).

DEFAULT_DIFFICULTY = 0, the easiest level with boxed-only accuracy above zero. Calibration
figures: docs/benchmarks.md#embedded-model-on-the-arith-task (benchmarks/arith_calibration.py).






"""

from __future__ import annotations

import random

from lenrl.errors import LenrlError
from lenrl.records import Problem

NAMES = [
    ("Tom", "he"),
    ("Ann", "she"),
    ("Maria", "she"),
    ("Liam", "he"),
    ("Sara", "she"),
    ("Omar", "he"),
    ("Mei", "she"),
    ("Jack", "he"),
    ("Nina", "she"),
    ("Ravi", "he"),
]
DEFAULT_DIFFICULTY = 0
OBJECTS = ["apples", "marbles", "stickers", "pencils", "cookies", "books", "coins", "cards", "stamps", "shells"]

# Verb phrases in the third person; {k}, {m} are operands, {friend} another name, {obj} the object.
ADD_VP = ["buys {k} more", "finds {k} more", "gets {k} more from {friend}", "picks up {k} more {obj}"]
SUB_VP = ["gives {k} to {friend}", "loses {k}", "sells {k}", "gives {k} of them away"]
GROUPS_VP = ["buys {k} bags with {m} {obj} in each", "gets {k} boxes of {m} {obj} each"]
OPENINGS = ["{name} has {n} {obj}", "{name} starts with {n} {obj}", "{name} owns {n} {obj}"]
CONNECTORS = ["Then {pron}", "After that, {pron}", "Next, {pron}", "Later, {pron}"]
QUESTIONS = ["How many {obj} does {name} have now?", "How many {obj} does {name} have in the end?"]


def evaluate(start: int, ops: list[list]) -> int:
    """The answer: `ops` (as stored in meta) applied to `start` in order."""
    value = start
    for op in ops:
        if op[0] == "add":
            value += op[1]
        elif op[0] == "sub":
            value -= op[1]
        elif op[0] == "add_groups":
            value += op[1] * op[2]
        else:
            raise ValueError(f"unknown arith op {op[0]!r}")
    return value


def _max_number(difficulty: int) -> int:
    return 9 if difficulty == 1 else 10 * difficulty


def _pick_op(rng: random.Random, value: int, difficulty: int) -> list:
    """One operation that keeps the running value non-negative (a subtraction leaves at least 1)."""
    hi = _max_number(difficulty)
    kinds = ["add", "sub"] + (["add_groups"] if difficulty >= 3 else [])
    kind = rng.choice(kinds)
    if kind == "sub" and value < 2:
        kind = "add"
    if kind == "add":
        return ["add", rng.randint(1, hi)]
    if kind == "sub":
        return ["sub", rng.randint(1, min(hi, value - 1))]
    return ["add_groups", rng.randint(2, 5), rng.randint(2, min(9, hi))]


def _verb_phrase(rng: random.Random, op: list, friend: str, obj: str) -> str:
    templates = {"add": ADD_VP, "sub": SUB_VP, "add_groups": GROUPS_VP}[op[0]]
    m = op[2] if len(op) > 2 else 0
    return rng.choice(templates).format(k=op[1], m=m, friend=friend, obj=obj)


def _demo_problem(rng: random.Random) -> tuple[str, int, int, list[list]]:
    """Difficulty 0: (question, start, answer, ops), the question led by a worked, boxed example."""
    (name, _), (other, _) = rng.sample(NAMES, 2)
    obj = rng.choice(OBJECTS)
    a, b, start, k = rng.randint(2, 5), rng.randint(1, 5), rng.randint(2, 5), rng.randint(1, 5)
    demo = (
        f"Example: {other} has {a} {obj} and buys {b} more. How many {obj} does {other} have now? "
        f"{other} has {a} + {b} = {a + b} {obj}. The answer is \\boxed{{{a + b}}}."
    )
    task = f"{name} has {start} {obj} and buys {k} more. How many {obj} does {name} have now?"
    question = f"{demo}\n\nNow solve: {task}"
    return question, start, start + k, [["add", k]]


def _one_problem(rng: random.Random, difficulty: int) -> tuple[str, int, int, list[list]]:
    """(question, start, answer, ops)."""
    if difficulty == 0:
        return _demo_problem(rng)
    (name, pron), (friend, _) = rng.sample(NAMES, 2)
    obj = rng.choice(OBJECTS)
    start = rng.randint(2, _max_number(difficulty))
    ops, value = [], start
    for _ in range(difficulty):
        ops.append(_pick_op(rng, value, difficulty))
        value = evaluate(value, ops[-1:])
    opening = rng.choice(OPENINGS).format(name=name, n=start, obj=obj)
    first = _verb_phrase(rng, ops[0], friend, obj)
    # Two layouts for the first step: one sentence joined by "and", or two sentences.
    two = rng.random() >= 0.5
    sentences = [f"{opening}.", f"{pron.capitalize()} {first}."] if two else [f"{opening} and {first}."]
    for op in ops[1:]:
        connector = rng.choice(CONNECTORS).format(pron=pron)
        sentences.append(f"{connector} {_verb_phrase(rng, op, friend, obj)}.")
    sentences.append(rng.choice(QUESTIONS).format(obj=obj, name=name))
    return " ".join(sentences), start, value, ops


def arith_problems(n: int, *, seed: int, difficulty: int) -> list[Problem]:
    """`n` problems, deterministic per (seed, difficulty); a smaller `n` gives a prefix of a larger one."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, int) or difficulty < 0:
        raise LenrlError(f"arith difficulty must be an integer >= 0, got {difficulty!r}")
    if n < 0:
        raise LenrlError(f"arith: number of problems must be >= 0, got {n}")
    # A string seed is hashed with SHA-512 by `random`, so it is stable across processes and platforms.
    rng = random.Random(f"lenrl-arith:{seed}:{difficulty}")
    problems = []
    for i in range(n):
        question, start, answer, ops = _one_problem(rng, difficulty)
        problems.append(
            Problem(
                id=f"arith-d{difficulty}-s{seed}-{i:06d}",
                question=question,
                answer=str(answer),
                meta={"task": "arith", "difficulty": difficulty, "start": start, "ops": ops},
            )
        )
    return problems

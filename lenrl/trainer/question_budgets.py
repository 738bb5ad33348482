"""Per-question token budgets L_q, kept across steps and saved with checkpoints (PALU, arXiv 2510.10168).

The rule (`rollout.question_budget`, lenrl/algos/budgets.py) updates a question's budget each time the
question is sampled, from that visit's correctness under its budget (a truncated response is wrong) and
lengths; the next visit (the next epoch, as PALU's "previous epoch pass rate") is sampled with
max_tokens = min(B(t), L_q). The state is a JSON map {question id: L_q}, written atomically next to the
metrics every step and into the checkpoint; a run that starts from a checkpoint directory holding it
carries on from the saved budgets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from lenrl.errors import LenrlError
from lenrl.files import atomic_write

STATE_FILE = "question_budgets.json"


class QuestionBudgets:
    def __init__(self, rule: Callable[..., int], rule_name: str, max_tokens: int, state: dict[str, int] | None = None):
        self.rule, self.rule_name, self.max_tokens = rule, rule_name, max_tokens
        self.budgets: dict[str, int] = dict(state or {})

    @property
    def active(self) -> bool:
        return self.rule_name != "none"

    def cap(self, qid: str, step_budget: int) -> int:
        """The max_tokens of this question's next rollouts."""
        return min(step_budget, self.budgets.get(qid, self.max_tokens))

    def observe(self, qid: str, correct_B: torch.Tensor, len_B: torch.Tensor, truncated_B: torch.Tensor) -> None:
        """One visit of question `qid`: its G rollouts' verifier outcome (before length shaping), token
        lengths and truncation flags. PALU's pass rate is correctness *under the budget* L_q
        (docs/algorithms.md §4.1): a response cut at its cap is not correct there, whatever its box says
        (the box may sit inside unfinished thinking), so it counts as wrong and its length (the cap) never
        enters the rule's length quantiles."""
        if not self.active:
            return
        current = self.budgets.get(qid, self.max_tokens)
        correct_B = correct_B.bool() & ~truncated_B.bool()
        new = self.rule(budget=current, correct_B=correct_B, len_B=len_B, max_tokens=self.max_tokens)
        self.budgets[qid] = int(new)

    def metrics(self) -> dict[str, float]:
        if not self.active or not self.budgets:
            return {}
        b = torch.tensor(list(self.budgets.values()), dtype=torch.float64)
        return {
            "budget/questions_seen": float(len(b)),
            "budget/question_mean": float(b.mean()),
            "budget/question_at_max_frac": float((b >= self.max_tokens).double().mean()),
        }

    def save(self, directory: str | Path) -> None:
        if not self.active:
            return
        state = {"rule": self.rule_name, "max_tokens": self.max_tokens, "budgets": self.budgets}
        atomic_write(Path(directory) / STATE_FILE, json.dumps(state))

    @staticmethod
    def load_state(directory: str | Path) -> dict[str, int] | None:
        """The budgets saved in `directory` (a checkpoint), or None when it holds none."""
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return {str(k): int(v) for k, v in data["budgets"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise LenrlError(f"{path}: not a question-budget state file ({type(e).__name__}: {e})") from None

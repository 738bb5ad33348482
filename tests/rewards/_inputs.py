"""Build RewardInput batches for the length-reward tests from compact per-sample descriptions.

A sample is a dict: c (correct: the grader's verdict, x.correct_B, with a matching completion `\\boxed{3}`
against gold `3`, else `no answer`), n (response tokens), g (group id), trunc (default: n >= budget), think
(think_len), budget, meta, text (overrides the completion), ids (overrides the token ids), prompt.
"""

from __future__ import annotations

from typing import Any

import torch

from lenrl.reward import RewardInput

RIGHT, WRONG, GOLD = "\\boxed{3}", "no answer", "3"


def sample(c: bool = True, n: int = 10, g: int = 0, **kw: Any) -> dict[str, Any]:
    return {"c": c, "n": n, "g": g, **kw}


def make_input(samples: list[dict[str, Any]], budget: int = 1000) -> RewardInput:
    b = [s.get("budget", budget) for s in samples]
    return RewardInput(
        prompts=[s.get("prompt", "q") for s in samples],
        completions=[s.get("text", RIGHT if s["c"] else WRONG) for s in samples],
        completion_ids=[list(s.get("ids", [7] * s["n"])) for s in samples],
        answers=[GOLD] * len(samples),
        meta=[dict(s.get("meta", {})) for s in samples],
        response_len_B=torch.tensor([s["n"] for s in samples], dtype=torch.long),
        think_len_B=torch.tensor([s.get("think", 0) for s in samples], dtype=torch.long),
        truncated_B=torch.tensor(
            [s.get("trunc", s["n"] >= bb) for s, bb in zip(samples, b, strict=False)], dtype=torch.bool
        ),
        group_id_B=torch.tensor([s["g"] for s in samples], dtype=torch.long),
        budget_B=torch.tensor(b, dtype=torch.long),
        correct_B=torch.tensor([bool(s["c"]) for s in samples], dtype=torch.bool),
    )

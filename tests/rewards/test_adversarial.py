"""Adversarial completions: each is graded within the runner's timeout to a defined score (issue: rewards
must never hang or crash the trainer, and never silently zero a batch by default)."""

import time

import pytest
import torch

from lenrl.config import RewardSpec
from lenrl.reward_runner import RewardRunner
from tests.test_reward_runner import make_input

ADVERSARIAL = {
    "nested_braces": "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}",
    "one_megabyte": "7 " * 500_000 + "\\boxed{7}",
    "tower_exponent": "\\boxed{10^{10^{10^{10}}}}",
    "invalid_utf8": b"\xff\xfe\\boxed{7}\xc3\x28".decode("utf-8", errors="surrogateescape"),
    "empty": "",
    "unclosed_box": "so the answer is \\boxed{7",
}


@pytest.mark.slow
def test_adversarial_completions_return_within_timeout_with_defined_scores():
    names = list(ADVERSARIAL)
    golds = ["1", "7", "10^{10^{10^{9}}}", "7", "7", "7"]
    x = make_input(list(range(len(names))), completions=[ADVERSARIAL[k] for k in names], answers=golds)
    with RewardRunner([RewardSpec("math_correct")], num_workers=2, timeout_s=30.0) as runner:
        t0 = time.perf_counter()
        out = runner.score(x)
        elapsed = time.perf_counter() - t0
    assert elapsed < 60
    scores = dict(zip(names, out.score_B.tolist(), strict=False))
    assert all(v in (0.0, 1.0) for v in scores.values()), scores
    assert scores["one_megabyte"] == 1.0  # the last box still counts, however long the text
    assert scores["empty"] == scores["unclosed_box"] == scores["tower_exponent"] == 0.0
    assert out.metrics["reward/errors"] == 0.0
    assert torch.isfinite(out.score_B).all()

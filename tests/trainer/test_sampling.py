"""Dynamic sampling with a fake engine and a fake reward runner (orchestration only; the real engine and
rewards are covered by tests/test_train_e2e.py)."""

import torch

from lenrl.config import AlgoConfig, Config, FnSpec, RolloutConfig, TrainConfig
from lenrl.data.stream import PromptStream
from lenrl.records import Problem, Prompt, Rollout
from lenrl.reward_runner import ScoredBatch
from lenrl.rollout.vllm_engine import GenerationStats
from lenrl.trainer.sampling import BatchSampler


class FakeEngines:
    def __init__(self):
        self.calls = 0

    def generate(self, requests, step):
        self.calls += 1
        out = [
            Rollout(q.group_id, q.prompt_ids, [1] * (i + 1), [-0.5] * (i + 1), "stop", q.max_tokens, 0, "", 0)
            for q in requests
            for i in range(q.n)
        ]
        return out, GenerationStats(seconds=1.0, tokens=sum(r.response_len for r in out))


class FakeRewards:
    """Correct iff the prompt's answer is "mixed" and the response is the group's first sample."""

    def score(self, x):
        first = torch.tensor([i == 0 or int(x.group_id_B[i]) != int(x.group_id_B[i - 1]) for i in range(len(x))])
        correct = first & torch.tensor([a == "mixed" for a in x.answers])
        return ScoredBatch(correct.float(), correct, {"reward/fake": float(correct.float().mean()), "reward/errors": 0.0})


def _sampler(answers, filt, max_draws=4, per_step=2):
    prompts = [Prompt(Problem(f"p{i}", "q", a), "text", [7, i]) for i, a in enumerate(answers)]
    cfg = Config(
        rollout=RolloutConfig(n=3, max_tokens=8),
        algo=AlgoConfig(filter=FnSpec(filt), filter_max_draws=max_draws),
        train=TrainConfig(prompts_per_step=per_step, micro_batch_size=2),
    )
    engines = FakeEngines()
    return BatchSampler(cfg, PromptStream(prompts, seed=0), engines, FakeRewards()), engines


def test_no_filter_is_one_draw():
    s, engines = _sampler(["all", "mixed", "all", "mixed"], "none")
    b = s.sample(step=1)
    assert engines.calls == 1 and len(b.groups) == 2 and b.metrics["sample/draws"] == 1
    assert len(b.rollouts) == 6 and b.metrics["len/mean"] == 2.0


def test_dynamic_sampling_draws_until_full_and_keeps_groups_whole():
    s, engines = _sampler(["all", "mixed"] * 4, "nonzero_std")
    b = s.sample(step=1)
    assert len(b.groups) == 2 and all(g.prompt.problem.answer == "mixed" for g in b.groups)
    assert b.metrics["sample/topped_up"] == 0 and b.metrics["sample/kept_frac"] <= 1.0
    gids = [r.group_id for r in b.rollouts]
    assert gids == sorted(gids) and len(set(gids)) == 2 and len(gids) == 6  # whole, contiguous, no duplicates
    assert torch.equal(b.score_B, torch.tensor([1.0, 0, 0, 1, 0, 0]))


def test_tops_up_with_dropped_groups_when_draws_run_out():
    s, engines = _sampler(["all"] * 6, "nonzero_std", max_draws=2)
    b = s.sample(step=1)
    assert engines.calls == 2 and len(b.groups) == 2
    assert b.metrics["sample/topped_up"] == 2 and b.metrics["sample/kept_frac"] == 0.0
    assert b.metrics["len/mean"] == 2.0  # metrics cover all 4 drawn groups

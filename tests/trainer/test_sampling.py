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
        return ScoredBatch(
            correct.float(), correct, {"reward/fake": float(correct.float().mean()), "reward/errors": 0.0}
        )


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


class CappedEngines:
    """Response i of a group has 2(i+1) tokens, cut at the request's max_tokens; records the requests."""

    def __init__(self):
        self.requests = []

    def generate(self, requests, step):
        self.requests.append(requests)
        out = []
        for q in requests:
            for i in range(q.n):
                t = min(2 * (i + 1), q.max_tokens)
                reason = "stop" if 2 * (i + 1) <= q.max_tokens else "length"
                out.append(Rollout(q.group_id, q.prompt_ids, [1] * t, [-0.5] * t, reason, q.max_tokens, 0, "", 0))
        return out, GenerationStats(seconds=1.0, tokens=sum(r.response_len for r in out))


class AllCorrect:
    def score(self, x):
        ok = torch.ones(len(x), dtype=torch.bool)
        return ScoredBatch(ok.float(), ok, {"reward/errors": 0.0})


def test_palu_budgets_shrink_per_question_across_visits_and_cap_the_requests(tmp_path):
    from lenrl.algos import QUESTION_BUDGETS
    from lenrl.trainer.question_budgets import QuestionBudgets

    prompts = [Prompt(Problem(f"p{i}", "q", "1"), "text", [7, i]) for i in range(2)]
    cfg = Config(rollout=RolloutConfig(n=3, max_tokens=8), train=TrainConfig(prompts_per_step=2, micro_batch_size=3))
    budgets = QuestionBudgets(QUESTION_BUDGETS.bind("palu", {}), "palu", 8)
    engines = CappedEngines()
    s = BatchSampler(cfg, PromptStream(prompts, seed=0), engines, AllCorrect(), budgets=budgets)
    for step in range(1, 5):
        b = s.sample(step)
    # every visit is all-correct: 8 -> 6 (α = 6 - 4) -> 4 (α = 6 - 4) -> 4 (lengths 2, 4, 4: α = 0)
    assert [[q.max_tokens for q in reqs] for reqs in engines.requests] == [[8, 8], [6, 6], [4, 4], [4, 4]]
    assert b.metrics["budget/question_mean"] == 4.0 and b.metrics["budget/question_at_max_frac"] == 0.0
    assert b.metrics["len/budget_mean"] == 4.0
    budgets.save(tmp_path)
    assert QuestionBudgets.load_state(tmp_path) == {"p0": 4, "p1": 4}


def test_question_budget_state_errors_and_none_rule_writes_nothing(tmp_path):
    import pytest

    from lenrl.errors import LenrlError
    from lenrl.trainer.question_budgets import STATE_FILE, QuestionBudgets

    assert QuestionBudgets.load_state(tmp_path) is None
    none = QuestionBudgets(lambda **_: 8, "none", 8)
    none.observe("p0", torch.ones(2, dtype=torch.bool), torch.tensor([1, 2]))
    none.save(tmp_path)
    assert not (tmp_path / STATE_FILE).exists() and none.metrics() == {} and none.cap("p0", 5) == 5
    (tmp_path / STATE_FILE).write_text("[1, 2]")
    with pytest.raises(LenrlError, match=f"{STATE_FILE}: not a question-budget state file"):
        QuestionBudgets.load_state(tmp_path)


def test_budget_placeholder_prompts_are_rendered_with_each_steps_cap(smol_tokenizer):
    from lenrl.data.prompts import PromptRenderer

    render = PromptRenderer(smol_tokenizer, "Answer in \\boxed{}. Use exactly {budget} tokens.", 256)
    problems = [Problem(f"p{i}", f"{i}+1?", "1") for i in range(2)]
    cfg = Config(
        rollout=RolloutConfig(n=2, max_tokens=8, budget=FnSpec("linear", {"end": 4, "decays": 1})),
        train=TrainConfig(steps=2, prompts_per_step=2, micro_batch_size=2),
    )
    engines = CappedEngines()
    s = BatchSampler(cfg, PromptStream(render(problems, 8), seed=0), engines, AllCorrect(), render=render)
    s.sample(1)
    s.sample(2)
    texts = [[smol_tokenizer.decode(q.prompt_ids) for q in reqs] for reqs in engines.requests]
    assert all("Use exactly 8 tokens." in t for t in texts[0]) and all("Use exactly 4 tokens." in t for t in texts[1])
    assert [q.max_tokens for q in engines.requests[1]] == [4, 4]

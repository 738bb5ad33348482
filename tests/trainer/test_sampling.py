"""Dynamic sampling with a fake engine and a fake reward runner (orchestration only; the real engine and
rewards are covered by tests/test_train_e2e.py)."""

import torch

from lenrl.config import AlgoConfig, Config, FnSpec, RolloutConfig, TrainConfig
from lenrl.data.stream import PromptStream
from lenrl.records import GenerationStats, Problem, Prompt, Rollout
from lenrl.reward_runner import ScoredBatch
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
    assert engines.calls == 1 and b.num_groups == 2 and b.metrics["sample/draws"] == 1
    assert len(b.rollouts) == 6 and b.metrics["len/mean"] == 2.0
    assert b.rollouts.response_len_B.tolist() == [1, 2, 3] * 2 and b.rollouts.budget_B.tolist() == [8] * 6


def test_dynamic_sampling_draws_until_full_and_keeps_groups_whole():
    s, engines = _sampler(["all", "mixed"] * 4, "nonzero_std")
    b = s.sample(step=1)
    assert b.num_groups == 2 and all(p.problem.answer == "mixed" for p in b.prompts)
    assert b.metrics["sample/short_groups"] == 0 and b.metrics["sample/kept_frac"] == 0.5
    gids = b.rollouts.group_id_B.tolist()
    assert gids == sorted(gids) and len(set(gids)) == 2 and len(gids) == 6  # whole, contiguous, no duplicates
    assert torch.equal(b.score_B, torch.tensor([1.0, 0, 0, 1, 0, 0]))


def test_no_filtered_out_group_is_topped_up_when_draws_run_out():
    s, engines = _sampler(["all"] * 6, "nonzero_std", max_draws=2)
    b = s.sample(step=1)
    assert engines.calls == 2 and b.num_groups == 0 and len(b.rollouts) == 0 and len(b.score_B) == 0
    assert b.metrics["sample/short_groups"] == 2 and b.metrics["sample/kept_frac"] == 0.0
    assert b.metrics["len/mean"] == 2.0  # metrics cover all 4 drawn groups


def test_batch_keeps_whole_groups_in_draw_order_up_to_the_target():
    # PromptStream(seed=0) draws p3, p1 then p0, p2 (group ids 0, 1, 2, 3): draw 1 keeps one group (p3), draw 2
    # two (p0, p2), of which only the first is needed
    s, _ = _sampler(["mixed", "all", "mixed", "mixed"], "nonzero_std", max_draws=2)
    b = s.sample(step=1)
    assert [p.problem.id for p in b.prompts] == ["p3", "p0"] and b.rollouts.group_id_B.tolist() == [0] * 3 + [2] * 3
    assert b.metrics["sample/short_groups"] == 0 and b.metrics["sample/draws"] == 2
    assert b.metrics["sample/kept_frac"] == 0.75 and b.correct_B.tolist() == [True, False, False] * 2


def test_dler_advantage_of_a_short_batch_is_that_of_the_kept_groups_alone():
    """DLER's batch whitening when the draws run out: the all-wrong group that dynamic sampling filtered out
    takes no part in the batch statistics and gets no weight. Topped up as before, it would get an advantage
    of about +1 on every wrong response."""
    from lenrl.algos import ADVANTAGES, AdvantageInput
    from lenrl.config import load_config

    cfg = load_config(
        "dler", None, ["rollout.n=3", "rollout.max_tokens=8", "train.prompts_per_step=2", "algo.filter_max_draws=1"]
    )
    prompts = [Prompt(Problem(f"p{i}", "q", a), "text", [7, i]) for i, a in enumerate(["mixed", "all"])]
    b = BatchSampler(cfg, PromptStream(prompts, seed=0), FakeEngines(), FakeRewards()).sample(step=1)
    assert [p.problem.answer for p in b.prompts] == ["mixed"] and b.metrics["sample/short_groups"] == 1
    whiten = ADVANTAGES.bind(cfg.algo.advantage.name, cfg.algo.advantage.params)
    r = b.rollouts
    adv_B = whiten(AdvantageInput(b.score_B, r.group_id_B, r.response_len_B, r.truncated_B))
    # by hand, kept group alone: rewards [1, 0, 0], lengths 1, 2, 3 (token weights); centred c = [2/3, -1/3, -1/3];
    # μ = (2/3 - 2/3 - 1) / 6 = -1/6; σ² = (1·(5/6)² + 2·(1/6)² + 3·(1/6)²) / 5 = 1/6
    expected = (torch.tensor([2 / 3, -1 / 3, -1 / 3], dtype=torch.float64) + 1 / 6) / (1 / 6 + 1e-8) ** 0.5
    torch.testing.assert_close(adv_B.double(), expected)


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
    # the verifier says correct every time; lengths 2, 4, 6 cut at the cap. Caps 8 and 6: nothing is cut, pass
    # rate 1: 8 -> 6 (α = 6 - 4) -> 4 (α = 6 - 4). Cap 4: the third response is cut (4 tokens, "length"),
    # so it is not correct under the budget: pass rate 2/3 < 0.8, reset to L_max = 8 (counted correct, as
    # before, it gave pass rate 1 and α = 4 - 4 = 0: the budget stayed at 4)
    assert [[q.max_tokens for q in reqs] for reqs in engines.requests] == [[8, 8], [6, 6], [4, 4], [8, 8]]
    assert b.metrics["len/budget_mean"] == 8.0 and b.metrics["len/truncated_frac"] == 0.0
    assert b.metrics["budget/question_mean"] == 6.0 and b.metrics["budget/question_at_max_frac"] == 0.0
    budgets.save(tmp_path)
    assert QuestionBudgets.load_state(tmp_path) == {"p0": 6, "p1": 6}


def test_palu_pass_rate_counts_a_truncated_response_as_wrong_and_ignores_its_length():
    from lenrl.algos import QUESTION_BUDGETS
    from lenrl.trainer.question_budgets import QuestionBudgets

    correct = torch.ones(4, dtype=torch.bool)  # the verifier's outcome: every box is right
    lens = torch.tensor([2, 4, 6, 10])
    cut = torch.tensor([False, False, False, True])  # the last one hit the cap of 10
    budgets = QuestionBudgets(QUESTION_BUDGETS.bind("palu", {"threshold": 0.75}), "palu", 10)
    budgets.observe("q", correct, lens, cut)
    # pass rate 3/4 >= 0.75; α = Q_1.0 - Q_0.5 of the correct lengths [2, 4, 6] = 6 - 4 = 2 (with the cut
    # response: [2, 4, 6, 10], α = 10 - 5 = 5)
    assert budgets.cap("q", 10) == 8
    budgets.observe("q", correct, lens, torch.tensor([False, False, True, True]))
    assert budgets.cap("q", 10) == 10  # pass rate 2/4 < 0.75: reset to L_max


def test_question_budget_state_errors_and_none_rule_writes_nothing(tmp_path):
    import pytest

    from lenrl.errors import LenrlError
    from lenrl.trainer.question_budgets import STATE_FILE, QuestionBudgets

    assert QuestionBudgets.load_state(tmp_path) is None
    none = QuestionBudgets(lambda **_: 8, "none", 8)
    none.observe("p0", torch.ones(2, dtype=torch.bool), torch.tensor([1, 2]), torch.zeros(2, dtype=torch.bool))
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


def test_counts_are_summed_and_means_weighted_across_draws():
    from lenrl.trainer.sampling import _weighted_mean

    parts = [
        (8, {"reward/timeouts": 1.0, "reward/errors": 0.0, "reward/x": 1.0}),
        (4, {"reward/timeouts": 2.0, "reward/errors": 3.0, "reward/x": 0.25}),
    ]
    out = _weighted_mean(parts)
    assert out["reward/timeouts"] == 3.0 and out["reward/errors"] == 3.0
    assert out["reward/x"] == (8 * 1.0 + 4 * 0.25) / 12

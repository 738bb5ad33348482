"""In-training evaluation setup: `eval.args` go through `lenrl eval`'s parser and checks, at setup."""

from __future__ import annotations

import pytest

from lenrl.config import load_config
from lenrl.errors import LenrlError
from lenrl.testbed.tokenizer import build_tokenizer
from lenrl.trainer.evaluation import PeriodicEval, eval_args


def _cfg(*overrides: str):
    return load_config("dler", None, ["eval.every=2", *overrides])


def test_default_args_are_the_testbed_held_out_split_as_the_closing_hint_says():
    from lenrl.train import _eval_hint

    cfg = _cfg()
    args = eval_args(cfg)
    assert args.benchmarks == "testbed:default" and args.n == 4 and args.temperature == 1.0 and args.thinking
    assert _eval_hint(cfg) == "--benchmarks testbed:default --n 4 --temperature 1 --max-tokens 384 --thinking"


def test_setup_renders_the_held_out_prompts_and_checks_lengths():
    tok = build_tokenizer()
    ev = PeriodicEval(_cfg("eval.args='--benchmarks testbed:default --limit 8 --n 2 --max-tokens 64'"), tok)
    [(bench, prompts)] = ev.prompts.items()
    assert bench == "testbed:default" and len(prompts) == 8 and ev.settings.n == 2
    with pytest.raises(LenrlError, match=r"exceed rollout.max_model_len 100"):
        PeriodicEval(
            _cfg(
                "eval.args='--benchmarks testbed:default --max-tokens 96'",
                "rollout.max_model_len=100",
                "rollout.max_tokens=64",
                "data.max_prompt_tokens=32",
            ),
            tok,
        )


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ("--benchmarks testbed:default --out x", r"eval.args: --out is set by the training run itself"),
        ("--benchmarks testbed:default --model=m", r"eval.args: --model is set by the training run itself"),
        ("--benchmarks testbed:default --n many", r"eval.args: not valid `lenrl eval` options"),
        ("--benchmarks nosuch", r"nosuch"),
    ],
)
def test_bad_eval_args_fail_at_setup(args, msg):
    with pytest.raises(LenrlError, match=msg):
        eval_args(_cfg(f"eval.args='{args}'"))


def test_a_non_testbed_source_must_name_its_benchmarks():
    with pytest.raises(LenrlError, match="eval.args: name the benchmarks"):
        eval_args(_cfg("data.source=arith"))

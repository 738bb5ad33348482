"""Testbed tokenizer, recipes, the atomic cached build, and the wiring into data, eval and model names."""

from __future__ import annotations

import json
import re

import pytest

from lenrl.data.loaders import load_problems
from lenrl.data.prompts import render_prompts
from lenrl.errors import LenrlError
from lenrl.eval.benchmarks import check_benchmark_names, load_benchmark
from lenrl.eval.samples import SampleRecord
from lenrl.eval.summary import summarize
from lenrl.files import atomic_dir
from lenrl.testbed.recipe import RECIPES, canonical, parse_spec
from lenrl.testbed.task import (
    DEFAULT_INSTRUCTION,
    TaskSpec,
    chains,
    instruction_for,
    padding_for,
    token_count,
    verbose_trace,
)

# a model small enough to build in seconds (its accuracy is not the point here)
TINY = "testbed:small:hidden=32:intermediate=64:layers=1:heads=2:train_steps=3:batch=4:eval_problems=2"


@pytest.fixture(scope="module")
def tok():
    from lenrl.testbed.tokenizer import build_tokenizer

    return build_tokenizer()


def test_tokenizer_matches_token_count_and_keeps_think(tok):
    for i, c in enumerate(chains(TaskSpec(), 100, split="train", seed=2)):
        text = verbose_trace(c, padding_for(c.steps, 2, i))
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == token_count(text)
        # vLLM decodes with skip_special_tokens=True: </think> and \boxed{ must survive it
        assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == text
    assert len(tok) < 110 and tok.eos_token == "<eos>" and tok.pad_token == "<pad>"


def test_chat_template_opens_the_thinking_span(tok):
    problems = load_problems("testbed:default", limit=1, seed=0)
    [p] = render_prompts(problems, tok, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=64)
    assert p.text == f"{problems[0].question}\n{DEFAULT_INSTRUCTION}\n<think>\n"
    # expression characters + "\n" + one instruction token + "\n" + <think> + "\n"
    assert len(p.token_ids) == len(problems[0].question) + 5


def test_budget_instructions_are_short_and_cover_the_presets(tok):
    """L1's and the curriculum's prompts are in the SFT data: their phrases tokenize to a few pieces, and the
    presets' instructions, filled in, are among what `instruction_for` draws."""
    from lenrl.config_checks import load_checked_config

    assert len(tok("Think for maximum 57 tokens.", add_special_tokens=False)["input_ids"]) == 4
    drawn = {re.sub(r"\d+", "N", instruction_for(0, i)) for i in range(400)}
    for algo, key in (("l1", "target_len"), ("curriculum", "budget")):
        instr = load_checked_config(algo=algo).data.instruction.replace(f"{{{key}}}", "57")
        assert len(tok(instr, add_special_tokens=False)["input_ids"]) == 6
        assert re.sub(r"\d+", "N", instr) in drawn


def test_recipes_parse_and_hash():
    name, r = parse_spec("testbed:default:max_steps=4:hidden=64:lr=0.001")
    assert name == "default" and r.task.max_steps == 4 and r.hidden == 64 and r.lr == 0.001
    assert r.digest() != RECIPES["default"].digest()
    assert parse_spec(canonical(name, r)) == (name, r)
    assert canonical("default", RECIPES["default"]) == "testbed:default"
    assert parse_spec("testbed:default:threads=1")[1].digest() == RECIPES["default"].digest()
    for bad, msg in [
        ("testbed:nope", "unknown testbed 'nope'; known: default, hard, small, underthink"),
        ("testbed:default:size=3", "unknown setting 'size'"),
        ("testbed:default:hidden=big", "hidden='big' is not an integer"),
        ("testbed:default:hidden", "is not key=value"),
        ("testbed:default:hidden=30:heads=4", "not divisible"),
    ]:
        with pytest.raises(LenrlError, match=msg):
            parse_spec(bad)


def test_data_source_and_benchmark():
    train = load_problems("testbed:default", limit=300, seed=4)
    assert len(train) == 300 and {p.meta["difficulty"] for p in train} == set(range(1, 6))
    assert all(p.meta["min_len"] >= 11 for p in train)
    fixed = load_problems("testbed:default", limit=20, seed=4, difficulty=3)
    assert {p.meta["difficulty"] for p in fixed} == {3}
    with pytest.raises(LenrlError, match="difficulty 9 outside the range 1..5"):
        load_problems("testbed:default", limit=5, difficulty=9)
    with pytest.raises(LenrlError, match="unknown testbed"):
        load_problems("testbed:bogus")
    check_benchmark_names(["testbed:small", "testbed:hard:max_steps=4"], {})
    with pytest.raises(LenrlError, match="unknown testbed"):
        check_benchmark_names(["testbed:smal"], {})
    held = load_benchmark("testbed:default", limit=200)
    assert len(held) == 200 and held == load_benchmark("testbed:default", limit=200)
    seen = {p.question for p in load_problems("testbed:default", seed=0)}
    assert not seen & {p.question for p in held}


def _rec(qid: str, length: int, correct: bool, truncated: bool = False) -> SampleRecord:
    return SampleRecord(qid, 0, 0, 10, length, 0, "length" if truncated else "stop", truncated, 1.0, correct, "1", "")


def test_summary_reports_testbed_metrics():
    # 3+4 -> L* = 11 ("3+4=7\n" 6 + </think> + \boxed{ + "7" + "}" + EOS); 3+4-2 -> L* = 17
    one, two = "testbed-test-0-000000:3+4", "testbed-test-0-000001:3+4-2"
    s = summarize([[_rec(one, 22, True)], [_rec(two, 51, False, truncated=True)]], [])
    tb = s["testbed"]
    assert tb["accuracy"] == 0.5 and tb["truncation_rate"] == 0.5
    assert tb["mean_min_len"] == 14 and tb["excess_length"] == pytest.approx(36.5 / 14)
    assert tb["mean_length_ratio"] == pytest.approx((2 + 3) / 2)
    assert tb["by_difficulty"]["1"]["accuracy"] == 1.0 and tb["by_difficulty"]["2"]["excess_length"] == 3.0
    assert "testbed" not in summarize([[_rec("gsm8k:1", 5, True)]], [])


def test_atomic_dir_leaves_nothing_on_interrupt(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt), atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (out / "config.json").exists() and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_build_is_cached_and_resolves(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LENRL_CACHE", str(tmp_path))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lenrl.model.embedded import resolve_model
    from lenrl.testbed import build as B

    calls = []
    real_train = B.train

    def interrupted(*a, **k):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(TINY)
    assert not list((tmp_path / "testbed").glob("*")), "an interrupted build leaves nothing behind"
    monkeypatch.setattr(B, "train", real_train)
    path = resolve_model(TINY)
    assert "building testbed model" in capsys.readouterr().out
    info = json.loads((tmp_path / "testbed" / path.rsplit("/", 1)[1] / "testbed.json").read_text())
    assert info["digest"] == parse_spec(TINY)[1].digest() and info["train"]["tokens"] > 0
    assert resolve_model(TINY) == path and "building" not in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(AutoTokenizer.from_pretrained(path))


def test_math_grader_on_testbed_traces():
    """The registered `math` grader (thinking on) grades testbed responses by their boxed integer: right
    answers by the exact-match shortcut, a truncated trace (no </think>) and a wrong box as wrong."""
    from rewards.math_correct import math_grader

    cs = chains(TaskSpec(), 200, split="train", seed=8)
    for i, c in enumerate(cs):
        text = verbose_trace(c, padding_for(c.steps, 8, i))
        assert math_grader(text, str(c.answer), thinking=True)
        assert not math_grader(text, str(c.answer + 1), thinking=True)
        assert not math_grader(text.split("</think>")[0], str(c.answer), thinking=True)

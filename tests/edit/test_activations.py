"""Teacher-forced activation capture for ThinkEdit (lenrl/edit/activations.py), on tiny random Llamas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lenrl.edit.activations import Activations, Example, mean_activations
from lenrl.errors import LenrlError

HIDDEN, HEADS, HEAD_DIM, LAYERS, VOCAB = 128, 4, 8, 3, 128  # F = HEADS * HEAD_DIM = 32 != D, to catch mix-ups


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        head_dim=HEAD_DIM,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def random_example(g: torch.Generator, prompt: int, thinking: int, after: int = 0) -> Example:
    ids = torch.randint(1, VOCAB, (prompt + thinking + after,), generator=g).tolist()
    return Example(ids, prompt, prompt + thinking)


def recompute(model, ids: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], list[dict[str, torch.Tensor]]]:
    """HF's hidden_states, and per layer the attention output, post-attention residual and layer output at
    every position, recomputed module by module with no hooks (one unpadded sequence, explicit causal mask)."""
    hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    t = ids.shape[1]
    causal = torch.full((1, 1, t, t), torch.finfo(torch.float32).min).triu(1)
    pos = model.model.rotary_emb(hs[0], torch.arange(t)[None])
    per_layer = []
    for layer, h in zip(model.model.layers, hs[:-1], strict=True):
        a = layer.self_attn(hidden_states=layer.input_layernorm(h), position_embeddings=pos, attention_mask=causal)[0]
        res = h + a
        per_layer.append({"attn_out": a, "res": res, "out": res + layer.mlp(layer.post_attention_layernorm(res))})
    return hs, per_layer


def test_sites_match_a_hook_free_recomputation(model):
    ex = random_example(torch.Generator().manual_seed(1), prompt=5, thinking=9, after=4)  # the 4 are ignored
    acts = mean_activations(model, [ex])
    assert acts.attn.shape == acts.mlp.shape == (1, LAYERS, HIDDEN) and acts.o_in.shape == (1, LAYERS, HEADS * HEAD_DIM)
    assert acts.attn.dtype == acts.mlp.dtype == acts.o_in.dtype == torch.float32
    with torch.no_grad():
        hs, per_layer = recompute(model, torch.tensor([ex.token_ids]))
        span = slice(ex.start - 1, ex.end - 1)  # the positions that predict the thinking tokens

        def mean(x):
            return x[0, span].mean(0)

        for i, (layer, r) in enumerate(zip(model.model.layers, per_layer, strict=True)):
            torch.testing.assert_close(acts.attn[0, i], mean(hs[i] + r["attn_out"]), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(acts.mlp[0, i], mean(r["out"]), atol=1e-5, rtol=1e-4)
            # o_proj is linear (no bias in Llama), so o_proj(mean z) is the mean attention output
            assert layer.self_attn.o_proj.bias is None
            torch.testing.assert_close(
                acts.o_in[0, i] @ layer.self_attn.o_proj.weight.T, mean(r["attn_out"]), atol=1e-5, rtol=1e-4
            )
            if i < LAYERS - 1:
                torch.testing.assert_close(acts.mlp[0, i], mean(hs[i + 1]), atol=1e-5, rtol=1e-4)
        # HF's last hidden state is after the final norm; the "mlp" site keeps the pre-norm residual stream
        torch.testing.assert_close(model.model.norm(per_layer[-1]["out"]), hs[-1], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(acts.mlp[0, -1], mean(hs[-1]), atol=1e-3)


def test_batches_equal_one_at_a_time_and_keep_the_given_order(model):
    g = torch.Generator().manual_seed(2)
    shapes = [(3, 12, 0), (7, 2, 5), (1, 20, 0), (4, 1, 0), (9, 6, 3), (2, 15, 1), (6, 4, 0)]
    examples = [random_example(g, *s) for s in shapes]
    alone = [mean_activations(model, [ex]) for ex in examples]
    for batch_size in (3, 8):
        batched = mean_activations(model, examples, batch_size=batch_size)
        assert len(batched) == len(examples)
        for i, one in enumerate(alone):
            for site in ("attn", "mlp", "o_in"):
                torch.testing.assert_close(getattr(batched, site)[i], getattr(one, site)[0], atol=1e-5, rtol=0)


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_removed_and_mode_restored_also_after_a_failure():
    model = tiny_llama()
    model.train()
    before = hook_count(model)
    mean_activations(model, [Example([1, 2, 3, 4], 2, 4)])
    assert hook_count(model) == before and model.training
    with pytest.raises(IndexError):  # a token id past the vocabulary fails inside the forward pass
        mean_activations(model, [Example([1, 2, VOCAB + 5, 4], 2, 4)])
    assert hook_count(model) == before and model.training


def test_bad_examples_name_the_example():
    model = tiny_llama()
    good = Example([1, 2, 3], 1, 3)
    for bad in [Example([1, 2, 3], 0, 2), Example([1, 2, 3], 2, 2), Example([1, 2, 3], 2, 4), Example([], 1, 1)]:
        with pytest.raises(LenrlError, match=r"example 1: need 1 <= start < end <= len"):
            mean_activations(model, [good, bad])
    with pytest.raises(LenrlError, match="no examples"):
        mean_activations(model, [])
    with pytest.raises(LenrlError, match="batch_size"):
        mean_activations(model, [good], batch_size=0)
    with pytest.raises(LenrlError, match="has no model.layers"):
        mean_activations(torch.nn.Linear(2, 2), [good])


def test_save_load_round_trip_and_select(tmp_path):
    g = torch.Generator().manual_seed(3)
    acts = Activations(torch.randn(5, 3, 8, generator=g), torch.randn(5, 3, 8, generator=g), torch.randn(5, 3, 4))
    acts.save(tmp_path / "acts.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["acts.pt"]  # no temporary file left beside it
    back = Activations.load(tmp_path / "acts.pt")
    for site in ("attn", "mlp", "o_in"):
        torch.testing.assert_close(getattr(back, site), getattr(acts, site), atol=0, rtol=0)
    for index in (
        [4, 0],
        torch.tensor([4, 0]),
        torch.tensor([True, False, False, False, True]).nonzero()[:, 0].flip(0),
    ):
        sub = acts.select(index)
        assert sub.attn.shape == (2, 3, 8) and sub.o_in.shape == (2, 3, 4)
        torch.testing.assert_close(sub.mlp, acts.mlp[[4, 0]], atol=0, rtol=0)
    (tmp_path / "junk.pt").write_text("not a tensor file")
    with pytest.raises(LenrlError, match="not an activations file"):
        Activations.load(tmp_path / "junk.pt")
    with pytest.raises(LenrlError, match="no such activations file"):
        Activations.load(tmp_path / "missing.pt")
    with pytest.raises(LenrlError, match="equal N and L"):
        Activations(torch.zeros(2, 3, 8), torch.zeros(2, 3, 8), torch.zeros(1, 3, 4))


def thinking_groups(g: torch.Generator, n: int = 16) -> tuple[torch.Tensor, list[Example], list[Example]]:
    """Disjoint token sets: prompts from one shared pool; "long" examples think 20-39 tokens drawn from S_long,
    "short" ones 3-7 tokens from S_short (lengths differ, as in the paper's >1000 vs <100 token split)."""
    perm = torch.randperm(VOCAB - 1, generator=g) + 1
    prompt_pool, s_long, s_short = perm[:40], perm[40:72], perm[72:104]

    def example(pool: torch.Tensor, lo: int, hi: int) -> Example:
        k = int(torch.randint(3, 8, (1,), generator=g))
        prompt = prompt_pool[torch.randint(0, len(prompt_pool), (k,), generator=g)]
        thinking = pool[torch.randint(0, len(pool), (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g)]
        ids = torch.cat([prompt, thinking]).tolist()
        return Example(ids, len(prompt), len(ids))

    return s_long, [example(s_long, 20, 40) for _ in range(n)], [example(s_short, 3, 8) for _ in range(n)]


def test_recovers_a_direction_planted_in_long_thinking_tokens():
    """Plant a random unit d in the embeddings of the tokens only long thinking uses (+0.4·d each; a row's own
    norm is ~0.02·√128 ≈ 0.23), then ThinkEdit's direction, mean(long) − mean(short) per layer, must point
    along d. Control: the same model and examples without the plant give a direction ⟂ d up to chance.

    Measured on seeds 0-9 of this setup (D = 128, 3 layers, 16 + 16 examples), cos(v_ℓ, d) over all layers
    and both residual sites: planted 0.73-0.95 (seed 0: attn 0.915/0.830/0.814, mlp 0.894/0.824/0.803; it
    falls with depth as random layers add d-free content), unplanted |cos| <= 0.16 (chance is ~1/√128 ≈ 0.09).
    Thresholds: planted > 0.6, unplanted < 0.3."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(HIDDEN, generator=g)
    d /= d.norm()
    s_long, long_ex, short_ex = thinking_groups(g)
    cosines = {}
    for planted in (False, True):
        model = tiny_llama(seed=0)
        if planted:
            with torch.no_grad():
                model.model.embed_tokens.weight[s_long] += 0.4 * d
        acts = mean_activations(model, long_ex + short_ex, batch_size=8)
        for site in ("attn", "mlp"):
            x = getattr(acts, site)
            v = x[: len(long_ex)].mean(0) - x[len(long_ex) :].mean(0)  # [L, D]: ThinkEdit's per-layer direction
            cosines[planted, site] = F.cosine_similarity(v, d[None], dim=-1)
    for site in ("attn", "mlp"):
        assert (cosines[True, site] > 0.6).all(), (site, cosines[True, site])
        assert (cosines[False, site].abs() < 0.3).all(), (site, cosines[False, site])

"""`token_logprobs`: the gathered log-softmax, computed row by row."""

import math

import pytest
import torch

from lenrl.trainer.logprobs import token_logprobs, token_logprobs_entropy


def test_hand_computed_two_token_vocabulary():
    # logits (0, ln 3): softmax = (1/4, 3/4); log-probs of targets 1 and 0
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    out = token_logprobs(logits, torch.tensor([[1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[math.log(0.75), math.log(0.25)]]))


def test_matches_full_log_softmax_and_its_gradient():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    target = torch.randint(0, 11, (3, 5))
    ref = torch.log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    out = token_logprobs(logits, target)
    torch.testing.assert_close(out, ref)
    (g_out,) = torch.autograd.grad(out.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_out, g_ref)


def test_entropy_hand_computed_and_against_the_full_softmax():
    # softmax (1/4, 3/4): H = -(1/4 ln 1/4 + 3/4 ln 3/4)
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    logp, ent = token_logprobs_entropy(logits, torch.tensor([[1]]))
    torch.testing.assert_close(ent, torch.tensor([[-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]]))
    torch.testing.assert_close(logp, token_logprobs(logits, torch.tensor([[1]])))
    torch.manual_seed(0)
    z = torch.randn(2, 4, 9) * 3
    _, ent = token_logprobs_entropy(z, torch.zeros(2, 4, dtype=torch.long))
    p = z.softmax(-1)
    torch.testing.assert_close(ent, -(p * p.log()).sum(-1))


def _group_batch(prompts, responses_per_group, *, group_ids=None):
    """A TrainBatch of groups: prompt g (left-padded to the longest) continued by each of its responses."""
    from lenrl.records import Rollout, RolloutBatch
    from lenrl.trainer.batch import build_train_batch

    rs = []
    for g, (prompt, responses) in enumerate(zip(prompts, responses_per_group, strict=True)):
        for resp in responses:
            gid = g if group_ids is None else group_ids[len(rs)]
            rs.append(Rollout(gid, prompt, resp, [-1.0] * len(resp), "stop", 16, 0, "", 0))
    return build_train_batch(RolloutBatch.from_rollouts(rs), torch.zeros(len(rs)), pad_id=2)


def test_shared_prefix_logprobs_and_gradient_equal_the_padded_pass(tiny_model_dir, monkeypatch):
    """Prompts of different lengths (left padding), mixed response lengths inside each group (right
    padding), temperature 0.7 and the entropy, in float64 so that round-off cannot hide a difference
    (measured: gradients within 1e-7 of their norm; in fp32 within 1.1e-5, the reductions' other order)."""
    from transformers import AutoModelForCausalLM

    from lenrl.trainer.logprobs import forward_positions, response_logprobs, shared_prompts

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    b = _group_batch([[5, 6, 7, 8], [20, 21]], [[[9, 10, 11], [12], [13, 14, 15, 16, 17]], [[30, 31], [32, 33, 34]]])
    shared = shared_prompts(b)
    assert shared is not None and shared[0].tolist() == [0, 3] and shared[1].tolist() == [0, 0, 0, 1, 1]
    m = b.response_mask_BT
    out = {}
    for share in (False, True):
        if share:  # the shared pass really runs (no silent fall-back to the padded one)
            monkeypatch.setattr("lenrl.trainer.logprobs._padded_logits", lambda *a: pytest.fail("padded pass"))
        model.zero_grad(set_to_none=True)
        logp, ent = response_logprobs(model, b, temperature=0.7, with_entropy=True, share_prefix=share)
        (-(logp * m).sum()).backward()
        out[share] = logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.testing.assert_close(out[True][0][m], out[False][0][m], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out[True][1][m], out[False][1][m], atol=1e-10, rtol=1e-10)
    for name, g in out[False][2].items():  # relative to each gradient's norm
        assert (out[True][2][name] - g).norm() <= 1e-6 * g.norm(), name
    # 5 rows x (4 + 5) padded; shared: 2 prompts x 4 + 5 rows x 4 response inputs
    assert forward_positions(b, None) == (45, 4 + 4 + 4 + 2 + 2 + 3 + 1 + 5 + 2 + 3)
    assert forward_positions(b, shared) == (2 * 4 + 5 * 4, 4 + 2 + 3 + 1 + 4 + 2 + 3)


def test_nothing_is_shared_across_different_prompts_or_single_rows(tiny_model_dir):
    from lenrl.trainer.logprobs import shared_prompts

    # one group id over two different prompts (a hand-made batch): never merged
    assert shared_prompts(_group_batch([[5, 6], [7, 8]], [[[9]], [[10]]], group_ids=[0, 0])) is None
    assert shared_prompts(_group_batch([[5, 6], [7, 8]], [[[9]], [[10]]])) is None  # one row per prompt
    # token 0 then 5, against 5 alone: equal once padding is zeroed, told apart by the mask
    assert shared_prompts(_group_batch([[0, 5], [5]], [[[9]], [[10]]], group_ids=[0, 0])) is None
    one_token = _group_batch([[5, 6]], [[[9], [10]]])  # T = 1: the prompt pass alone predicts everything
    from transformers import AutoModelForCausalLM

    from lenrl.trainer.logprobs import response_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        a, _ = response_logprobs(model, one_token, temperature=1.0, share_prefix=True)
        b, _ = response_logprobs(model, one_token, temperature=1.0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_only_attention_caches_are_shared():
    """Hybrid models keep a recurrent state in their cache that the response pass updates in place, which
    autograd cannot differentiate through: their prompts go through the padded pass."""
    from transformers import DynamicCache

    from lenrl.trainer.logprobs import _attention_only

    cache = DynamicCache()
    cache.update(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4), 0)
    assert _attention_only(cache)

    class LinearAttentionLayer:  # stands in for transformers' recurrent-state cache layers
        pass

    cache.layers.append(LinearAttentionLayer())
    assert not _attention_only(cache) and not _attention_only(None)

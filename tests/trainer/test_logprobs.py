"""`token_logprobs`: the gathered log-softmax, computed row by row."""

import math

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

"""A rollout batch -> padded training tensors.

Layout of one row: [left padding | prompt | response | right padding]. Every response starts at the
same column P, so the response block is a plain slice `[:, P:]` of width T and the logits that predict
it are the last T + 1 positions (`logits_to_keep`), which saves the vocabulary projection of the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenrl.records import RolloutBatch


@dataclass(frozen=True)
class TrainBatch:
    """input_ids_BL / attention_mask_BL [B, P + T]; response_mask_BT bool [B, T]; adv_B float;
    sampler_logp_BT float (the rollout engine's log-probs, for the sync-parity metric); group_id_B long;
    correct_B bool (verifier outcome, for group losses such as DRPO); response_len_B long (tokens)."""

    input_ids_BL: torch.Tensor
    attention_mask_BL: torch.Tensor
    response_mask_BT: torch.Tensor
    adv_B: torch.Tensor
    sampler_logp_BT: torch.Tensor
    group_id_B: torch.Tensor
    correct_B: torch.Tensor
    response_len_B: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids_BL.shape[0]

    @property
    def prompt_len_B(self) -> torch.Tensor:
        """Prompt tokens per row (prompts are left-padded into the first L - T columns)."""
        P = self.input_ids_BL.shape[1] - self.response_mask_BT.shape[1]
        return self.attention_mask_BL[:, :P].sum(1)

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask_BT.sum())

    def select(self, idx: torch.Tensor | slice) -> TrainBatch:
        """Rows `idx`, with all-padding columns on either side trimmed off."""
        am_BL, rm_BT = self.attention_mask_BL[idx], self.response_mask_BT[idx]
        T = self.response_mask_BT.shape[1]
        P = self.input_ids_BL.shape[1] - T
        first = int(am_BL[:, :P].any(0).float().argmax()) if P else 0
        t_used = int(rm_BT.any(0).sum())  # responses are right-padded: used columns are a prefix
        cols = slice(first, P + t_used)
        return TrainBatch(
            input_ids_BL=self.input_ids_BL[idx][:, cols],
            attention_mask_BL=am_BL[:, cols],
            response_mask_BT=rm_BT[:, :t_used],
            adv_B=self.adv_B[idx],
            sampler_logp_BT=self.sampler_logp_BT[idx][:, :t_used],
            group_id_B=self.group_id_B[idx],
            correct_B=self.correct_B[idx],
            response_len_B=self.response_len_B[idx],
        )


def build_train_batch(
    rollouts: RolloutBatch, adv_B: torch.Tensor, pad_id: int, correct_B: torch.Tensor | None = None
) -> TrainBatch:
    B = len(rollouts)
    P = max(len(p) for p in rollouts.prompt_ids)
    T = max(int(rollouts.response_len_B.max()), 1)
    ids_BL = torch.full((B, P + T), pad_id, dtype=torch.long)
    am_BL = torch.zeros((B, P + T), dtype=torch.long)
    rm_BT = torch.zeros((B, T), dtype=torch.bool)
    slogp_BT = torch.zeros((B, T), dtype=torch.float32)
    for i, (prompt, response, logps) in enumerate(
        zip(rollouts.prompt_ids, rollouts.response_ids, rollouts.sampler_logprobs, strict=True)
    ):
        p, t = len(prompt), len(response)
        ids_BL[i, P - p : P] = torch.tensor(prompt, dtype=torch.long)
        ids_BL[i, P : P + t] = torch.tensor(response, dtype=torch.long)
        am_BL[i, P - p : P + t] = 1
        rm_BT[i, :t] = True
        slogp_BT[i, :t] = torch.tensor(logps, dtype=torch.float32)
    return TrainBatch(
        input_ids_BL=ids_BL,
        attention_mask_BL=am_BL,
        response_mask_BT=rm_BT,
        adv_B=adv_B.float(),
        sampler_logp_BT=slogp_BT,
        group_id_B=rollouts.group_id_B.clone(),
        correct_B=torch.zeros(B, dtype=torch.bool) if correct_B is None else correct_B.bool(),
        response_len_B=rollouts.response_len_B.clone(),
    )

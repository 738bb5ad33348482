"""Micro-batches built by length, so that mixed response lengths do not multiply the learner's work.

A length-control batch holds responses from a few tokens to the full cap, often inside one group. Cut in
arrival order, every micro-batch is padded to its longest row and the forward pass spends much of its time
on padding. Here rows are sorted longest first and cut greedily: a micro-batch takes the next row while its
padded size (rows x (longest prompt + longest response), the width `TrainBatch.select` trims to) stays
within `max_tokens` and its row count within `max_rows`. Neighbours in the sorted order have similar
lengths, so little padding is left (the same idea as verl's dynamic batch size by token count).

The loss does not depend on the cut: every aggregation normalises by the mini-batch's global token and
sequence counts (lenrl/trainer/learner.py), so the gradient is the same sum over rows in any grouping.
A group loss (DRPO) needs whole groups in one micro-batch; then groups are the units that are sorted and
packed, by their longest row. Shared prefixes (lenrl/trainer/logprobs.py) want a group's rows together,
since its prompt is computed once per micro-batch it appears in: then each group is first cut into pieces
that fit the caps (one piece when it fits whole), and the pieces are packed.
"""

from __future__ import annotations

import torch


def plan_micro_batches(
    prompt_len_B: torch.Tensor,
    response_len_B: torch.Tensor,
    group_id_B: torch.Tensor,
    *,
    max_rows: int,
    max_tokens: int,
    whole_groups: bool,
    keep_groups: bool = False,
) -> list[torch.Tensor]:
    """Row indices of each micro-batch (ascending within one), longest micro-batch first.

    Shapes: [B] long each -> list of [b_i] long with sum b_i = B. `max_tokens` 0 = no token cap. A single
    unit (row, or group when `whole_groups`) larger than either cap gets a micro-batch of its own.
    `keep_groups`: a group's rows stay in one micro-batch where the caps allow it (shared prefixes).
    """
    caps = (prompt_len_B, response_len_B, max_rows, max_tokens)
    if whole_groups:
        units = _group_units(group_id_B)
    elif keep_groups:
        units = [piece for rows in _group_units(group_id_B) for piece in _pack([r[None] for r in rows], *caps)]
    else:
        units = [torch.tensor([i]) for i in range(len(group_id_B))]
    return _pack(units, *caps)


def _pack(
    units: list[torch.Tensor], prompt_len_B: torch.Tensor, response_len_B: torch.Tensor, max_rows: int, max_tokens: int
) -> list[torch.Tensor]:
    """Units (row index tensors) sorted longest first and cut greedily under the caps."""
    p_len = [int(prompt_len_B[u].max()) for u in units]
    r_len = [int(response_len_B[u].max()) for u in units]
    order = sorted(range(len(units)), key=lambda j: (-(p_len[j] + r_len[j]), j))  # stable: ties keep arrival order
    plans: list[list[int]] = []
    rows = width_p = width_r = 0
    for j in order:
        n = len(units[j])
        wp, wr = max(width_p, p_len[j]), max(width_r, r_len[j])
        fits = rows + n <= max_rows and (not max_tokens or (rows + n) * (wp + wr) <= max_tokens)
        if plans and fits:
            plans[-1].append(j)
            rows, width_p, width_r = rows + n, wp, wr
        else:
            plans.append([j])
            rows, width_p, width_r = n, p_len[j], r_len[j]
    return [torch.cat([units[j] for j in plan]).sort().values for plan in plans]


def group_edges(group_id_B: torch.Tensor) -> list[int]:
    """Where each group starts, and the batch size last: rows of a group are contiguous in a rollout batch.
    Shape: [B] -> G + 1 ints."""
    starts = [0] + [i for i in range(1, len(group_id_B)) if group_id_B[i] != group_id_B[i - 1]]
    return [*starts, len(group_id_B)]


def _group_units(group_id_B: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of each group."""
    edges = group_edges(group_id_B)
    return [torch.arange(edges[k], edges[k + 1]) for k in range(len(edges) - 1)]


def padding_fraction(positions: list[tuple[int, int]]) -> float:
    """Share of the forward passes' input positions that are padding: 1 - real / computed, summed over
    micro-batches; `positions` holds (computed, real) per micro-batch (lenrl/trainer/logprobs.py)."""
    total = sum(t for t, _ in positions)
    real = sum(r for _, r in positions)
    return 1.0 - real / total if total else 0.0

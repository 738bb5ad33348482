"""The columnar rollout batch: built once from the engines' rollouts, sub-batched and joined by row."""

import torch

from lenrl.records import Rollout, RolloutBatch


def _rollouts() -> list[Rollout]:
    return [
        Rollout(3, [7, 8], [1, 2], [-0.1, -0.2], "stop", 4, 1, "ab", 2),
        Rollout(3, [7, 8], [1, 2, 3, 4], [-0.1] * 4, "length", 4, 0, "abcd", 2),
        Rollout(5, [9], [6], [-0.3], "stop", 6, 1, "c", 2),
    ]


def test_from_rollouts_fills_every_column():
    b = RolloutBatch.from_rollouts(_rollouts())
    assert len(b) == 3 and b.num_groups == 2
    assert b.group_id_B.tolist() == [3, 3, 5] and b.group_id_B.dtype == torch.long
    assert b.response_len_B.tolist() == [2, 4, 1] and b.think_len_B.tolist() == [1, 0, 1]
    assert b.truncated_B.tolist() == [False, True, False] and b.truncated_B.dtype == torch.bool
    assert b.budget_B.tolist() == [4, 4, 6] and b.weight_version_B.tolist() == [2, 2, 2]
    assert b.prompt_ids == [[7, 8], [7, 8], [9]] and b.response_ids[1] == [1, 2, 3, 4]
    assert b.sampler_logprobs[0] == [-0.1, -0.2] and b.texts == ["ab", "abcd", "c"]


def test_select_and_cat_keep_rows_aligned():
    b = RolloutBatch.from_rollouts(_rollouts())
    g5, g3 = b.select(b.group_id_B == 5), b.select(b.group_id_B == 3)
    assert g5.texts == ["c"] and g5.response_len_B.tolist() == [1] and g5.prompt_ids == [[9]]
    joined = RolloutBatch.cat([g5, g3, b.select(torch.zeros(3, dtype=torch.bool))])
    assert joined.texts == ["c", "ab", "abcd"] and joined.group_id_B.tolist() == [5, 3, 3]
    assert joined.truncated_B.tolist() == [False, False, True] and joined.sampler_logprobs[0] == [-0.3]
    assert len(b.select(torch.zeros(3, dtype=torch.bool))) == 0

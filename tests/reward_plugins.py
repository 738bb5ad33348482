"""Reward plugins and graders for tests/test_reward_runner.py, loaded by reference (`path.py:fn`,
`module:fn`), not registered. Their behaviour is driven by the batch's `meta`, so one runner covers
several cases."""

from __future__ import annotations

import math
import time
import zlib
from collections import Counter

import torch

from lenrl.reward import RewardInput, RewardOutput


def constant(x: RewardInput, *, value: float = 1.0) -> RewardOutput:
    return RewardOutput(score_B=torch.full((len(x),), value))


def length(x: RewardInput, *, scale: float = 1.0) -> RewardOutput:
    """score = scale * response_len; part "half" = score / 2."""
    s = x.response_len_B.float() * scale
    return RewardOutput(score_B=s, parts={"half": s / 2})


def group_whole(x: RewardInput) -> RewardOutput:
    """1.0 where this chunk holds the sample's whole group (meta "group_size"); part "chunk" = chunk size."""
    counts = Counter(x.group_id_B.tolist())
    whole = [float(counts[g] == m["group_size"]) for g, m in zip(x.group_id_B.tolist(), x.meta, strict=False)]
    return RewardOutput(score_B=torch.tensor(whole), parts={"chunk": torch.full((len(x),), float(len(x)))})


def maybe_nan(x: RewardInput) -> RewardOutput:
    """NaN ("not applicable") where meta "na" is set, else 2.0."""
    return RewardOutput(score_B=torch.tensor([math.nan if m.get("na") else 2.0 for m in x.meta]))


def misbehave(x: RewardInput) -> RewardOutput:
    """Sleeps meta "sleep" seconds, or raises when meta "boom" is set; else scores meta "score" (1.0)."""
    for m in x.meta:
        if m.get("boom"):
            raise RuntimeError("kaboom\nsecond line")
        time.sleep(m.get("sleep", 0.0))
    return RewardOutput(score_B=torch.tensor([float(m.get("score", 1.0)) for m in x.meta]))


def even_tokens(x: RewardInput) -> RewardOutput:
    """Fraction of even token ids in the completion: varies between random samples, so a tiny random
    model gets a non-zero advantage from it (used by the end-to-end training test)."""
    score = [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in x.completion_ids]
    return RewardOutput(torch.tensor(score, dtype=torch.float32))


def even_majority(x: RewardInput) -> RewardOutput:
    """Stands in for a correctness reward on a random tiny model: the fraction of even token ids (pair it
    with a stand-in grader such as `parity_grader`, which gives the groups a spread of outcomes)."""
    return even_tokens(x)


def parity_grader(completion: str, answer: str, *, thinking: bool) -> bool:
    """Stands in for a verifier on a random tiny model: "correct" when the CRC-32 of the completion is even,
    a fair coin per distinct completion, so a group of 4 is all-same with probability 1/8 only (whatever
    the model's character statistics, which can make `even_majority_grader` agree on a whole batch)."""
    return zlib.crc32(completion.encode("utf-8", "surrogatepass")) % 2 == 0


def counting_grader(completion: str, answer: str, *, thinking: bool, log_path: str = "") -> bool:
    """Exact match, appending one line per call to `log_path` (so a test can count grader calls made in
    worker processes); "sleep:<s>" sleeps, "boom" raises."""
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(completion.replace("\n", " ") + "\n")
    if completion.startswith("sleep:"):
        time.sleep(float(completion.split(":", 1)[1]))
    if completion == "boom":
        raise RuntimeError("grader kaboom")
    return completion == answer


def trl_style_length(prompts, completions, completion_ids, **kwargs):
    """A plain TRL reward function, unchanged: -len/10, None where the dataset column `skip` is set."""
    return [None if skip else -len(ids) / 10 for ids, skip in zip(completion_ids, kwargs["skip"], strict=False)]

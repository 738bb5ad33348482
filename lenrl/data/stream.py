"""Endless seeded pass over the prompts: reshuffled every epoch, so a run is reproducible from its seed."""

from __future__ import annotations

import random

from lenrl.records import Prompt


class PromptStream:
    def __init__(self, prompts: list[Prompt], seed: int):
        self.prompts, self.rng = prompts, random.Random(seed)
        self.order: list[int] = []
        self.epoch = 0

    def next(self, k: int) -> list[Prompt]:
        out: list[Prompt] = []
        while len(out) < k:
            if not self.order:
                self.order = list(range(len(self.prompts)))
                self.rng.shuffle(self.order)
                self.epoch += 1
            out.append(self.prompts[self.order.pop()])
        return out

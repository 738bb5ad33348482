"""Endless seeded pass over the prompts: reshuffled every epoch, so a run is reproducible from its seed.

`state()` and `restore()` carry the position (this epoch's remaining order, the epoch, the shuffling RNG)
through a checkpoint, so a resumed run draws exactly the prompts the uninterrupted one would have.
"""

from __future__ import annotations

import random
from typing import Any

from lenrl.errors import LenrlError
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

    def state(self) -> dict[str, Any]:
        """JSON-ready position; `size` guards against resuming over a different prompt set."""
        version, internal, gauss = self.rng.getstate()
        return {
            "size": len(self.prompts),
            "epoch": self.epoch,
            "order": list(self.order),
            "rng": [version, list(internal), gauss],
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state["size"] != len(self.prompts):
            raise LenrlError(
                f"resume: the checkpoint's prompt stream had {state['size']} prompts, this run has {len(self.prompts)}"
                " (data.source / data.limit changed?)"
            )
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.epoch, self.order = int(state["epoch"]), [int(i) for i in state["order"]]

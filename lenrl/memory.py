"""Peak memory of this process, for the step metrics (`mem/learner_peak_gib`, `mem/rollout_peak_gib`)."""

from __future__ import annotations

import resource
import sys

import torch


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated device memory on a GPU; elsewhere the process's peak resident set (ru_maxrss), which
    on CPU holds the weights, optimizer state, activations and (in the in-process engine) the KV cache."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**30 if sys.platform == "darwin" else 2**20)

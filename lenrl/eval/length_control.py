"""Length-control metrics: the realised length of each response against the target length its prompt
asked for (L1, Aggarwal & Welleck, arXiv 2503.04697, §4; `lenrl eval --target-len`), as pure numpy
functions over per-response arrays with the conventions of lenrl/eval/metrics.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lenrl.eval.metrics import _len_B, _same_nonempty

LENGTH_TOLERANCE = 0.2
"""the default band of `within_target_rate`: |len - N| <= 20% of N"""


def _targets_B(len_B: object, target_B: object) -> tuple[np.ndarray, np.ndarray]:
    len_B, target_B = _len_B("len_B", len_B), _len_B("target_B", target_B)
    _same_nonempty(len_B=len_B, target_B=target_B)
    if (target_B <= 0).any():
        raise ValueError("target_B must hold positive target lengths")
    return len_B, target_B


def length_error(len_B: object, target_B: object) -> float:
    """Mean absolute length error in tokens: (1/B) sum_b |len_b - N_b|.

    L1's "length error" (Aggarwal & Welleck, arXiv 2503.04697, §4: the deviation of the generated length
    from the target N written into the prompt as "Think for N tokens."; docs/algorithms.md §11.3,
    length-control error). Shapes: len_B, target_B [B] -> scalar.
    """
    len_B, target_B = _targets_B(len_B, target_B)
    return float(np.abs(len_B - target_B).mean())


def relative_length_error(len_B: object, target_B: object) -> float:
    """Mean relative length error: (1/B) sum_b |len_b - N_b| / N_b (L1 arXiv 2503.04697 §4, normalised by
    the target so that a miss of 20 tokens at N = 40 weighs as much as a miss of 100 at N = 200).

    Equals `length_error / N` when every target is N. Shapes: len_B, target_B [B] -> scalar.
    """
    len_B, target_B = _targets_B(len_B, target_B)
    return float((np.abs(len_B - target_B) / target_B).mean())


def length_target_correlation(len_B: object, target_B: object) -> float:
    """Pearson correlation between target and realised length over the B responses:
    r = sum_b (N_b - mean N)(len_b - mean len) / sqrt(sum_b (N_b - mean N)^2 * sum_b (len_b - mean len)^2).

    1 when length follows the target linearly (whatever the slope or offset: it measures control, not
    calibration, which `length_error` measures); about 0 when the prompt's target is ignored (L1 arXiv
    2503.04697 §4 plots realised against requested length). NaN when either side is constant (one target
    for all, or one length for all). Shapes: len_B, target_B [B] -> scalar.
    """
    len_B, target_B = _targets_B(len_B, target_B)
    dl, dn = len_B - len_B.mean(), target_B - target_B.mean()
    denom = math.sqrt(float((dl * dl).sum()) * float((dn * dn).sum()))
    return float((dl * dn).sum()) / denom if denom > 0 else math.nan


def within_target_rate(len_B: object, target_B: object, tolerance: float = LENGTH_TOLERANCE) -> float:
    """Fraction of responses within the tolerance band of their target: (1/B) sum_b [|len_b - N_b| <= tol * N_b]
    (the "fraction within tolerance" of docs/algorithms.md §11.3; the band edge counts as within).

    Shapes: len_B, target_B [B], tolerance >= 0 -> scalar.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance}")
    len_B, target_B = _targets_B(len_B, target_B)
    return float((np.abs(len_B - target_B) <= tolerance * target_B).mean())


def over_target_rate(len_B: object, target_B: object) -> float:
    """Budget violation rate: (1/B) sum_b [len_b > N_b] (docs/algorithms.md §11.3; what L1-Max bounds).

    Shapes: len_B, target_B [B] -> scalar.
    """
    len_B, target_B = _targets_B(len_B, target_B)
    return float((len_B > target_B).mean())


@dataclass(frozen=True)
class LengthControl:
    """The length-control metrics of one evaluation (each function above, over the same responses)."""

    samples: int
    mean_target: float
    mean_abs_error: float
    mean_relative_error: float
    correlation: float
    within_tolerance: float
    tolerance: float
    over_target: float


def length_control(len_B: object, target_B: object, tolerance: float = LENGTH_TOLERANCE) -> LengthControl:
    """Every length-control metric of responses against their targets. Shapes: [B], [B] -> LengthControl."""
    lens, targets = _targets_B(len_B, target_B)
    return LengthControl(
        samples=int(lens.size),
        mean_target=float(targets.mean()),
        mean_abs_error=length_error(lens, targets),
        mean_relative_error=relative_length_error(lens, targets),
        correlation=length_target_correlation(lens, targets),
        within_tolerance=within_target_rate(lens, targets, tolerance),
        tolerance=tolerance,
        over_target=over_target_rate(lens, targets),
    )
